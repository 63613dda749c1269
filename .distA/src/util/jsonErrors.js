/** Messages for JSON that a person wrote (keys.json, config.json): with a line, never with the text. */
/** 1-based line of a character offset. */
export function lineAt(text, offset) {
    let line = 1;
    for (let i = 0; i < offset && i < text.length; i++)
        if (text.charCodeAt(i) === 10)
            line++;
    return line;
}
/** Where JSON.parse stopped. V8 gives no position for "Unexpected token": find the shortest prefix failing so. */
function jsonErrorOffset(text, message) {
    const pos = /position (\d+)/.exec(message);
    if (pos)
        return Number(pos[1]);
    if (message.startsWith('Unexpected end'))
        return text.length;
    if (!message.startsWith('Unexpected token'))
        return undefined;
    const failsThere = (n) => {
        try {
            JSON.parse(text.slice(0, n));
            return false;
        }
        catch (err) {
            return err.message.startsWith('Unexpected token');
        }
    };
    let lo = 1;
    let hi = text.length;
    while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (failsThere(mid))
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo - 1;
}
/**
 * JSON.parse's complaint with its line. V8 quotes the source around an unexpected token; that quote
 * is dropped, as it can hold a key and span lines.
 */
export function jsonErrorLine(text, err) {
    const message = /^Unexpected token '[\s\S]+?'/.exec(err.message)?.[0] ?? err.message;
    const offset = jsonErrorOffset(text, err.message);
    return offset === undefined ? message : `line ${lineAt(text, offset)}: ${message}`;
}
//# sourceMappingURL=jsonErrors.js.map