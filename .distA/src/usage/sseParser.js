import { StringDecoder } from 'node:string_decoder';
/**
 * Incremental server-sent-events parser (the WHATWG rules that matter here: `event:` and `data:`
 * fields, multi-line data joined with "\n", events end at a blank line, LF or CRLF). Fed a copy of
 * the bytes on the side; it never holds up the stream it reads.
 */
export class SseParser {
    onEvent;
    decoder = new StringDecoder('utf8');
    rest = '';
    event;
    data = [];
    constructor(onEvent) {
        this.onEvent = onEvent;
    }
    push(chunk) {
        const text = this.rest + (typeof chunk === 'string' ? chunk : this.decoder.write(chunk));
        let start = 0;
        for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', start)) {
            const end = nl > start && text.charCodeAt(nl - 1) === 13 ? nl - 1 : nl;
            this.line(text.slice(start, end));
            start = nl + 1;
        }
        this.rest = start === 0 ? text : text.slice(start);
    }
    /** End of stream: a final event without its blank line still counts. */
    end() {
        const tail = this.rest + this.decoder.end();
        this.rest = '';
        if (tail)
            this.line(tail);
        this.line('');
    }
    line(line) {
        if (line === '') {
            if (this.data.length)
                this.onEvent(this.event, this.data.join('\n'));
            this.event = undefined;
            this.data = [];
            return;
        }
        if (line.charCodeAt(0) === 58)
            return; // ":" comment / keep-alive
        const colon = line.indexOf(':');
        const field = colon === -1 ? line : line.slice(0, colon);
        let value = colon === -1 ? '' : line.slice(colon + 1);
        if (value.charCodeAt(0) === 32)
            value = value.slice(1);
        if (field === 'data')
            this.data.push(value);
        else if (field === 'event')
            this.event = value;
    }
}
//# sourceMappingURL=sseParser.js.map