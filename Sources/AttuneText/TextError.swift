/// A tokenizer, chat template or generation setting Attune cannot use, with the reason
/// in one line (naming the file, component or key).
public struct TextError: Error, CustomStringConvertible, Equatable {
    public var message: String
    /// Control characters in `message` (a token, key or template text quoted from the
    /// file) are written as escapes, so the message stays one line whatever the file holds.
    public init(_ message: String) {
        var out = ""
        for c in message.unicodeScalars {
            switch c {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where c.properties.generalCategory == .control || c == "\u{2028}" || c == "\u{2029}":
                out += "\\u{\(String(c.value, radix: 16))}"
            default: out.unicodeScalars.append(c)
            }
        }
        self.message = out
    }
    public var description: String { message }
}
