// The query-string parser: Node's querystring (Express's "simple" parser), except for the `+` offset sign of a time
// typed unencoded.
import querystring, { type ParsedUrlQuery } from 'node:querystring';

/** The query parameters that hold an RFC 3339 date-time (openapi.yaml FromFilter and ToFilter). */
const TIME_PARAMETERS = new Set(['from', 'to']);

/**
 * A literal `+` between the last digit of the time and an `HH:MM` offset at the end of the value. Form encoding reads
 * `+` as a space, but a date-time has no space there, so this `+` can only be the offset sign of a time typed without
 * percent-encoding (`from=2026-01-01T00:00:00+02:00`). A `+` elsewhere (a form-encoded space separator) is untouched.
 */
const OFFSET_SIGN = /(?<=\d)\+(?=\d\d(?::|%3A)\d\d$)/i;

/** `query` is the URL's query string, null when the URL has none. */
export function parseQuery(query: string | null): ParsedUrlQuery {
  if (query === null) return {};
  const pairs = query.split('&').map((pair) => {
    const eq = pair.indexOf('=');
    if (eq < 0 || !TIME_PARAMETERS.has(pair.slice(0, eq))) return pair;
    return pair.slice(0, eq + 1) + pair.slice(eq + 1).replace(OFFSET_SIGN, '%2B');
  });
  return querystring.parse(pairs.join('&'));
}
