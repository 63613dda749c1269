export class BodyTooLarge extends Error {
}
/** Reads a whole request body, failing as soon as it passes maxBytes. */
export function readBody(req, maxBytes) {
    return new Promise((resolve, reject) => {
        const chunks = [];
        let size = 0;
        const onData = (chunk) => {
            size += chunk.length;
            if (size > maxBytes) {
                req.off('data', onData);
                req.resume(); // drain the rest; the answer is 413 either way
                reject(new BodyTooLarge());
                return;
            }
            chunks.push(chunk);
        };
        req.on('data', onData);
        req.once('end', () => resolve(Buffer.concat(chunks, size)));
        req.once('error', reject);
    });
}
//# sourceMappingURL=readBody.js.map