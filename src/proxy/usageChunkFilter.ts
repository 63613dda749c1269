import { StringDecoder } from 'node:string_decoder';
import { Transform, type TransformCallback } from 'node:stream';

const USAGE_NULL = /,"usage":null(?=[,}])|"usage":null,/g;

/**
 * For a client that did not ask for stream usage (Keyward asked on its behalf): drops the extra
 * usage-only chunk (`"choices":[]` with a usage object) and the `"usage":null` field the option adds
 * to every other chunk, so the client receives exactly what OpenAI would have sent it. Works event by
 * event: each complete event is passed on at once, so nothing is delayed or coalesced.
 */
export class UsageChunkFilter extends Transform {
  private pending = '';
  private readonly decoder = new StringDecoder('utf8');

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    const text = this.pending + this.decoder.write(chunk);
    const last = text.lastIndexOf('\n\n');
    if (last === -1) {
      this.pending = text;
      return done();
    }
    this.pending = text.slice(last + 2);
    const out = text
      .slice(0, last + 2)
      .split(/(?<=\n\n)/)
      .filter((event) => !isUsageOnlyChunk(event))
      .map((event) => event.replace(USAGE_NULL, ''))
      .join('');
    done(null, out.length ? out : undefined);
  }

  override _flush(done: TransformCallback): void {
    const tail = this.pending + this.decoder.end();
    done(null, tail.length ? tail : undefined);
  }
}

function isUsageOnlyChunk(event: string): boolean {
  return event.startsWith('data: {') && event.includes('"choices":[]') && /"usage":\{/.test(event);
}
