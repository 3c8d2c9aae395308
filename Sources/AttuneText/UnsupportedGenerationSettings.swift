extension GenerationConfig {
    /// transformers' generation keys that Attune does not implement (beam search, n-gram
    /// bans, forced or suppressed tokens, other warpers). They are not refused — a model's
    /// file may carry them for tasks Attune does not run — but reported in
    /// `unsupportedSettings` when the value would make `generate` differ.
    static let unsupportedKeys = [
        "num_beams", "num_beam_groups", "penalty_alpha", "dola_layers", "no_repeat_ngram_size", "bad_words_ids",
        "min_length", "min_new_tokens", "forced_bos_token_id", "forced_eos_token_id", "suppress_tokens",
        "begin_suppress_tokens", "sequence_bias", "exponential_decay_length_penalty", "typical_p",
        "epsilon_cutoff", "eta_cutoff", "top_h", "guidance_scale", "renormalize_logits", "remove_invalid_values",
        "watermarking_config", "max_time",
    ]

    /// The numeric value of each key that leaves `generate` unchanged (its global default or the
    /// value `_get_logits_processor` skips); keys not listed are inactive only when null,
    /// empty or false.
    static let inactive: [String: Double] = [
        "num_beams": 1, "num_beam_groups": 1, "penalty_alpha": 0, "no_repeat_ngram_size": 0, "min_length": 0,
        "min_new_tokens": 0, "typical_p": 1, "epsilon_cutoff": 0, "eta_cutoff": 0, "guidance_scale": 1,
    ]
}
