export const emptyUsage = () => ({
    input_tokens: null,
    cached_input_tokens: null,
    output_tokens: null,
    reasoning_tokens: null,
    total_tokens: null,
    input_audio_tokens: null,
    output_audio_tokens: null,
    input_image_tokens: null,
    output_image_tokens: null,
    audio_seconds: null,
    input_characters: null,
});
//# sourceMappingURL=types.js.map