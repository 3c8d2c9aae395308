/// Decodes a stream of ids as they are generated.
///
/// Guarantee: the concatenation of everything `push` and `flush` return equals
/// `tokenizer.decode(allIds, skipSpecialTokens:)`, and no returned string ends in the middle
/// of a character (text that still ends in U+FFFD, a character whose bytes are not all there
/// yet, is held back, and so is a run of ByteFallback's <0xNN> tokens until it ends).
///
/// It decodes a window of ids: the ids since the last point where the text was complete,
/// and returns what decoding the window adds beyond decoding its already-returned prefix, as
/// tokenizers' DecodeStream does. Decoders that treat the first token specially (Strip,
/// Metaspace) do so in both decodes, so the difference is the new text. `flush` ends the
/// stream: ids pushed after it decode as a new text.
public struct IncrementalDecoder: Sendable {
    private let tokenizer: Tokenizer
    private let skipSpecialTokens: Bool
    private var ids: [Int32] = []
    /// ids[..<prefixStart] are decoded and returned; ids[prefixStart..<readStart] were returned
    /// as the tail of the last window.
    private var prefixStart = 0
    private var readStart = 0

    public init(tokenizer: Tokenizer, skipSpecialTokens: Bool = false) {
        self.tokenizer = tokenizer
        self.skipSpecialTokens = skipSpecialTokens
    }

    /// Adds one id; returns the text it completes (often empty).
    public mutating func push(_ id: Int32) -> String {
        ids.append(id)
        // ByteFallback decodes a run of <0xNN> tokens as a whole (one U+FFFD per byte if the
        // run is not valid UTF-8), so a later byte can change the text of earlier ones: wait
        // for the run to end.
        if let last = ids[prefixStart...].last(where: { tokenizer.decodes($0, skipSpecialTokens: skipSpecialTokens) }),
           tokenizer.isFallbackByte(last) {
            return ""
        }
        let prefix = tokenizer.decode(Array(ids[prefixStart..<readStart]), skipSpecialTokens: skipSpecialTokens)
        let full = tokenizer.decode(Array(ids[prefixStart...]), skipSpecialTokens: skipSpecialTokens)
        guard full.unicodeScalars.count > prefix.unicodeScalars.count, full.unicodeScalars.last != "\u{FFFD}",
              full.unicodeScalars.starts(with: prefix.unicodeScalars) else { return "" }
        // The next window starts after the text returned before this call, provided what this
        // call returned has a token left after skipping; otherwise the window would begin with
        // no token, and Strip or Metaspace would treat the next token as the first of the text.
        if ids[readStart...].contains(where: { tokenizer.decodes($0, skipSpecialTokens: skipSpecialTokens) }) {
            prefixStart = readStart
        }
        readStart = ids.count
        return string(full.unicodeScalars.dropFirst(prefix.unicodeScalars.count))
    }

    /// Returns whatever text is still held back (at the end of generation).
    public mutating func flush() -> String {
        let prefix = tokenizer.decode(Array(ids[prefixStart..<readStart]), skipSpecialTokens: skipSpecialTokens)
        let full = tokenizer.decode(Array(ids[prefixStart...]), skipSpecialTokens: skipSpecialTokens)
        prefixStart = ids.count
        readStart = ids.count
        guard full.unicodeScalars.starts(with: prefix.unicodeScalars) else { return "" }
        return string(full.unicodeScalars.dropFirst(prefix.unicodeScalars.count))
    }
}
