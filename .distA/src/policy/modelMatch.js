/**
 * Model allow-lists use shell-style globs (`gpt-4o*`, `o?-mini`, `text-embedding-3-*`). Model ids
 * have no path separators, so a glob is just `*` (any run) and `?` (one character), whole-id and
 * case-sensitive, as OpenAI's ids are.
 */
export function compileModelGlobs(patterns) {
    const regexes = patterns.map((p) => new RegExp(`^${p.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`));
    return (model) => regexes.some((r) => r.test(model));
}
//# sourceMappingURL=modelMatch.js.map