/// A tokenizer, chat template or generation setting Attune cannot use, with the reason
/// in one line (naming the file, component or key).
public struct TextError: Error, CustomStringConvertible, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
