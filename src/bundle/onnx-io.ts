// Reads the graph's input and output names straight from ONNX protobuf bytes, so a bundle can be checked without onnxruntime.
//
// Wire format (onnx.proto): ModelProto.graph = field 7; GraphProto.initializer = 5, input = 11, output = 12;
// ValueInfoProto.name / TensorProto.name = field 1 (TensorProto.name is field 8).

export interface OnnxIo {
  /** Graph inputs that are not initializers, in graph order. */
  inputs: string[];
  outputs: string[];
}

interface Field {
  no: number;
  wire: number;
  /** Byte range of a length-delimited field's payload. */
  start: number;
  end: number;
}

function readVarint(buf: Uint8Array, pos: number): [value: number, next: number] {
  let value = 0;
  let mul = 1;
  for (let i = 0; i < 10; i++) {
    const byte = buf[pos + i];
    if (byte === undefined) throw new Error('truncated varint');
    value += (byte & 0x7f) * mul;
    if ((byte & 0x80) === 0) return [value, pos + i + 1];
    mul *= 128;
  }
  throw new Error('varint too long');
}

/** Top-level fields of one message in buf[start, end); nested messages are not descended into. */
function* fields(buf: Uint8Array, start: number, end: number): Generator<Field> {
  let pos = start;
  while (pos < end) {
    const [key, afterKey] = readVarint(buf, pos);
    const no = Math.floor(key / 8);
    const wire = key & 7;
    let next: number;
    let payloadStart = afterKey;
    switch (wire) {
      case 0:
        next = readVarint(buf, afterKey)[1];
        break;
      case 1:
        next = afterKey + 8;
        break;
      case 2: {
        const [len, afterLen] = readVarint(buf, afterKey);
        payloadStart = afterLen;
        next = afterLen + len;
        break;
      }
      case 5:
        next = afterKey + 4;
        break;
      default:
        throw new Error(`unsupported protobuf wire type ${wire} at byte ${pos}`);
    }
    if (next > end) throw new Error('truncated protobuf field');
    yield { no, wire, start: payloadStart, end: next };
    pos = next;
  }
}

function stringField(buf: Uint8Array, msg: Field, fieldNo: number): string | undefined {
  for (const f of fields(buf, msg.start, msg.end)) {
    if (f.no === fieldNo && f.wire === 2) return new TextDecoder().decode(buf.subarray(f.start, f.end));
  }
  return undefined;
}

/** Throws when the bytes are not a ModelProto with a graph. */
export function readOnnxIo(buf: Uint8Array): OnnxIo {
  const graph = [...fields(buf, 0, buf.length)].find((f) => f.no === 7 && f.wire === 2);
  if (!graph) throw new Error('no graph in the ONNX file');
  const initializers = new Set<string>();
  const inputs: string[] = [];
  const outputs: string[] = [];
  for (const f of fields(buf, graph.start, graph.end)) {
    if (f.wire !== 2) continue;
    if (f.no === 5) initializers.add(stringField(buf, f, 8) ?? '');
    else if (f.no === 11) inputs.push(stringField(buf, f, 1) ?? '');
    else if (f.no === 12) outputs.push(stringField(buf, f, 1) ?? '');
  }
  return { inputs: inputs.filter((name) => !initializers.has(name)), outputs };
}
