/// Finds stop strings in generated text that arrives in chunks (an incremental
/// detokenizer's output), so that the printed text never contains a stop string, even one
/// spread over several tokens.
///
/// `push` returns the text that is safe to print: everything except the longest tail that
/// could still be the beginning of a stop string. That tail is held back until the next
/// chunk shows it is not one (then it is released) or completes a stop string (then the
/// text before the stop string is released, the rest dropped, and `stopped` is true). When
/// several stop strings occur, the one starting first wins. At the end of generation
/// `flush` releases what is held. Matching is on Unicode scalars, exactly: no normalization,
/// and a chunk boundary inside a grapheme cluster does not matter.
public struct StopStringMatcher: Sendable {
    public let stops: [String]
    private let patterns: [[Unicode.Scalar]]
    private let longest: Int
    private var pending: [Unicode.Scalar] = []
    /// The stop string found, once `push` has reported `stopped`.
    public private(set) var matched: String?

    /// Throws for an empty stop string (it would match before any text).
    public init(stops: [String]) throws {
        if stops.contains(where: \.isEmpty) { throw TextError("stop strings must not be empty") }
        self.stops = stops
        self.patterns = stops.map { Array($0.unicodeScalars) }
        self.longest = patterns.map(\.count).max() ?? 0
    }

    /// Adds `text`; returns what can be printed now, and whether a stop string has been
    /// found (then this and every later push emit nothing more).
    public mutating func push(_ text: String) -> (emit: String, stopped: Bool) {
        if matched != nil { return ("", true) }
        if patterns.isEmpty { return (text, false) }
        pending.append(contentsOf: text.unicodeScalars)
        var first: (start: Int, stop: Int)?
        for (k, pattern) in patterns.enumerated() {
            if let at = firstOccurrence(of: pattern), at < (first?.start ?? .max) { first = (at, k) }
        }
        if let first {
            matched = stops[first.stop]
            let emit = Self.string(pending[..<first.start])
            pending.removeAll()
            return (emit, true)
        }
        let release = pending.count - heldTailLength()
        let emit = Self.string(pending[..<release])
        pending.removeFirst(release)
        return (emit, false)
    }

    /// The held-back text, at the end of generation; empty once a stop string was found.
    public mutating func flush() -> String {
        let text = Self.string(pending[...])
        pending.removeAll()
        return text
    }

    private func firstOccurrence(of pattern: [Unicode.Scalar]) -> Int? {
        guard pattern.count <= pending.count else { return nil }
        for start in 0...(pending.count - pattern.count)
        where pending[start..<(start + pattern.count)].elementsEqual(pattern) {
            return start
        }
        return nil
    }

    /// The length of the longest tail of `pending` that is a proper prefix of a stop string.
    private func heldTailLength() -> Int {
        for start in max(0, pending.count - longest + 1)..<pending.count {
            let tail = pending[start...]
            if patterns.contains(where: { $0.count > tail.count && $0.starts(with: tail) }) {
                return pending.count - start
            }
        }
        return 0
    }

    private static func string(_ scalars: ArraySlice<Unicode.Scalar>) -> String {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars)
        return String(view)
    }
}
