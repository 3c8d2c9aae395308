import AttuneTensor
import Foundation

/// Read access to one JSON object of tokenizer.json, with errors that name the file and key.
///
/// Foundation's `JSONSerialization` is enough here: tokenizer.json holds strings, small
/// integers and booleans, and the vocabulary is keyed by strings (read as Unicode scalars,
/// so canonically equivalent tokens stay distinct; see `ScalarKey`).
struct JSONFields {
    let object: [String: Any]
    /// Where this object sits, e.g. "tokenizer.json: model", for messages.
    let path: String

    init(_ value: Any?, path: String) throws {
        guard let object = value as? [String: Any] else {
            throw TextError("\(path) must be an object")
        }
        self.object = object
        self.path = path
    }

    func isNull(_ key: String) -> Bool { object[key] == nil || object[key] is NSNull }

    func type() throws -> String {
        guard let t = object["type"] as? String else { throw TextError("\(path) has no \"type\"") }
        return t
    }

    func string(_ key: String) throws -> String {
        guard let s = object[key] as? String else { throw TextError("\(path).\(key) must be a string") }
        return s
    }

    func optionalString(_ key: String) throws -> String? {
        if isNull(key) { return nil }
        return try string(key)
    }

    func bool(_ key: String, default value: Bool) throws -> Bool {
        if isNull(key) { return value }
        guard let b = object[key] as? Bool else { throw TextError("\(path).\(key) must be true or false") }
        return b
    }

    func int(_ key: String) throws -> Int {
        guard let n = object[key] as? NSNumber, let i = Int(exactly: n.doubleValue) else {
            throw TextError("\(path).\(key) must be an integer")
        }
        return i
    }

    func array(_ key: String) throws -> [Any] {
        guard let a = object[key] as? [Any] else { throw TextError("\(path).\(key) must be an array") }
        return a
    }

    func fields(_ key: String) throws -> JSONFields { try JSONFields(object[key], path: "\(path).\(key)") }

    func optionalFields(_ key: String) throws -> JSONFields? {
        if isNull(key) { return nil }
        return try fields(key)
    }
}

/// Parses a JSON file into Foundation values, naming the file on failure.
func readJSONFile(_ url: URL) throws -> Any {
    let data: Data
    do { data = try Data(contentsOf: url) } catch {
        throw TextError("\(url.lastPathComponent): cannot read (\(FileProblem.reading(url.path, error)))")
    }
    return try parseJSON(data, name: url.lastPathComponent)
}

func parseJSON(_ data: Data, name: String) throws -> Any {
    do { return try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) } catch {
        throw TextError("\(name): not valid JSON")
    }
}
