import type { IncomingHttpHeaders } from 'node:http';
import busboy from 'busboy';

export interface FieldSniffer {
  write(chunk: Buffer): void;
  end(): void;
}

const WANTED = new Set(['model', 'stream', 'response_format']);

/**
 * Reads the small form fields (model, stream) of a multipart upload from a copy of its bytes while
 * the upload itself streams to the upstream untouched. File parts are skipped, never kept.
 */
export function sniffMultipart(
  headers: IncomingHttpHeaders,
  onField: (name: string, value: string) => void,
  onDone?: () => void,
): FieldSniffer | undefined {
  // Two boundaries: busboy splits by the first, another parser might by the last and read other
  // fields (another model). Such an upload is not read: its model stays unknown.
  if ((String(headers['content-type']).match(/;\s*boundary\s*=/gi)?.length ?? 0) > 1) return undefined;
  let parser: busboy.Busboy;
  try {
    parser = busboy({ headers, limits: { fieldSize: 64 * 1024 } });
  } catch {
    return undefined; // not multipart, or no boundary: nothing to read
  }
  let failed = false;
  parser.on('field', (name, value) => {
    if (WANTED.has(name)) onField(name, value);
  });
  // A file part cut off by the end of the body errors on its own stream: without a listener that
  // error would be thrown and take the process down.
  parser.on('file', (_name, file) => file.on('error', () => {}).resume());
  parser.on('error', () => {
    failed = true; // a malformed upload is the upstream's to reject; the sniffer just stops
    onDone?.();
  });
  if (onDone) parser.on('close', onDone);
  return {
    write(chunk) {
      if (!failed) parser.write(chunk);
    },
    end() {
      if (!failed) parser.end();
    },
  };
}
