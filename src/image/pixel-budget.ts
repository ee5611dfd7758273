// The decoded-pixel budgets: what the images of a request decode to (not what they weigh on the wire) is reserved from
// the header sizes before any pixel is decoded, against a cap per request and a cap for the whole process, so a
// small upload cannot make the process allocate gigabytes (a 35 KB PNG can be 6000 x 6000 pixels).
import { Overloaded, PixelBudgetExceeded } from '../errors.js';

export interface PixelBudgetOptions {
  /** Most pixels one request may decode or hold (its images, letterboxes and crops together). */
  perRequest: number;
  /** Most pixels all requests together may be decoding or holding at once. */
  perProcess: number;
}

/** One request's share of the process budget: reserved once its headers are read, released when its work settles. */
export interface PixelLease {
  /** Reserves `pixels` more for this request; 413 beyond the request budget, 503 beyond what the process has left. */
  reserve(pixels: number): void;
  /** Gives back everything this lease reserved; idempotent. */
  release(): void;
}

export class PixelBudget {
  private held = 0;

  constructor(readonly opts: PixelBudgetOptions) {
    if (opts.perRequest < 1 || opts.perProcess < opts.perRequest) throw new Error('pixel budgets: need 1 <= perRequest <= perProcess');
  }

  /** Pixels reserved by requests now. */
  get inUse(): number {
    return this.held;
  }

  lease(): PixelLease {
    let mine = 0;
    return {
      reserve: (pixels) => {
        const { perRequest, perProcess } = this.opts;
        if (mine + pixels > perRequest) {
          throw new PixelBudgetExceeded(`the images decode to ${mine + pixels} pixels (with the detector's letterbox and the crops); the request budget is ${perRequest} (ASM_FER_REQUEST_PIXEL_BUDGET)`, 'ASM_FER_REQUEST_PIXEL_BUDGET', perRequest, mine + pixels);
        }
        if (this.held + pixels > perProcess) {
          throw new Overloaded(`${this.held} decoded pixels are held by requests in progress; ${pixels} more would pass the process budget of ${perProcess} (ASM_FER_PROCESS_PIXEL_BUDGET)`);
        }
        this.held += pixels;
        mine += pixels;
      },
      release: () => {
        this.held -= mine;
        mine = 0;
      },
    };
  }
}
