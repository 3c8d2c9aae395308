/// Generation settings chosen by the user (command-line flags); nil keeps the model's value.
public struct GenerationOverrides: Equatable, Sendable {
    public var doSample: Bool?
    public var temperature: Double?
    public var topK: Int?
    public var topP: Double?
    public var minP: Double?
    public var repetitionPenalty: Double?
    public var maxNewTokens: Int?
    /// Replaces the model's `stop_strings` when given.
    public var stopStrings: [String]?

    public init(doSample: Bool? = nil, temperature: Double? = nil, topK: Int? = nil, topP: Double? = nil,
                minP: Double? = nil, repetitionPenalty: Double? = nil, maxNewTokens: Int? = nil,
                stopStrings: [String]? = nil) {
        self.doSample = doSample
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.minP = minP
        self.repetitionPenalty = repetitionPenalty
        self.maxNewTokens = maxNewTokens
        self.stopStrings = stopStrings
    }
}

extension GenerationConfig {
    /// This configuration with the user's choices on top: a value given explicitly wins.
    ///
    /// Unlike transformers (which warns and stays greedy), asking for a temperature above 0,
    /// a top-k, top-p or min-p turns sampling on unless `doSample` is given as false; a
    /// temperature of 0 means greedy. `maxNewTokens` replaces the model's `max_length` too.
    /// Values are checked with the same rules as the files; messages name the setting.
    public func merging(_ o: GenerationOverrides) throws -> GenerationConfig {
        func checkReal(_ key: String, _ value: Double?) throws {
            if let value, let requirement = Self.realRequirement(key, value) {
                throw TextError("\(key) must be \(requirement), got \(value)")
            }
        }
        func checkInt(_ key: String, _ value: Int?) throws {
            if let value, let requirement = Self.intRequirement(key, value) {
                throw TextError("\(key) must be \(requirement), got \(value)")
            }
        }
        try checkReal("temperature", o.temperature)
        try checkReal("top_p", o.topP)
        try checkReal("min_p", o.minP)
        try checkReal("repetition_penalty", o.repetitionPenalty)
        try checkInt("top_k", o.topK)
        try checkInt("max_new_tokens", o.maxNewTokens)
        if let stops = o.stopStrings, stops.contains(where: \.isEmpty) { throw TextError("stop strings must not be empty") }

        var c = self
        if let v = o.temperature { c.temperature = v }
        if let v = o.topK { c.topK = v }
        if let v = o.topP { c.topP = v }
        if let v = o.minP { c.minP = v }
        if let v = o.repetitionPenalty { c.repetitionPenalty = v }
        if let v = o.maxNewTokens { c.lengthLimit = .newTokens(v) }
        if let v = o.stopStrings { c.stopStrings = v }
        if let v = o.doSample {
            c.doSample = v
        } else if let t = o.temperature {
            c.doSample = t > 0
        } else if o.topK != nil || o.topP != nil || o.minP != nil {
            c.doSample = true
        }
        return c
    }
}
