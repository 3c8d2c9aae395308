import Foundation

/// A value inside a chat template, modelled on the Python objects jinja2 handles for
/// transformers' `apply_chat_template` (str, int, float, bool, None, list, dict,
/// namespace, jinja's Undefined). Printing and comparison follow Python, because the
/// rendered prompt must equal transformers' byte for byte.
indirect enum JinjaValue {
    /// jinja2's default `Undefined`: prints as "", is falsy, iterates as empty, and
    /// fails (with `hint`) when used in arithmetic, attribute access or calls.
    case undefined(hint: String)
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case list([JinjaValue])
    /// A Python tuple: `items()` pairs and `(a, b)` literals; prints as `(a, b)`.
    case tuple([JinjaValue])
    case dict(JinjaDict)
    /// `namespace(...)`: the one mutable object, shared by reference across loop scopes.
    case namespace(JinjaNamespace)
    /// A global callable (`raise_exception`, `strftime_now`, `namespace`, `range`).
    case function(String)

    var isUndefined: Bool { if case .undefined = self { return true } else { return false } }

    /// Python truthiness.
    var truthy: Bool {
        switch self {
        case .undefined, .none: return false
        case .bool(let b): return b
        case .int(let i): return i != 0
        case .double(let d): return d != 0
        case .string(let s): return !s.isEmpty
        case .list(let l), .tuple(let l): return !l.isEmpty
        case .dict(let d): return !d.keys.isEmpty
        case .namespace, .function: return true
        }
    }

    /// The Python type name used in jinja2's error messages ("'dict object' has no attribute ...").
    var typeName: String {
        switch self {
        case .undefined: return "Undefined"
        case .none: return "NoneType"
        case .bool: return "bool"
        case .int: return "int"
        case .double: return "float"
        case .string: return "str"
        case .list: return "list"
        case .tuple: return "tuple"
        case .dict: return "dict"
        case .namespace: return "Namespace"
        case .function: return "function"
        }
    }

    /// Builds a template value from the Swift values a caller passes in `extra`
    /// (String, Bool, Int, Double, arrays, string-keyed dictionaries, NSNull); dictionary keys
    /// are taken in sorted order, since a Swift dictionary has none.
    static func from(_ any: Any?, path: String) throws -> JinjaValue {
        guard let any else { return .none }
        switch any {
        case let v as JinjaValue: return v
        case is NSNull: return .none
        case let s as String: return .string(s)
        case let b as Bool: return .bool(b)
        case let i as Int: return .int(i)
        case let d as Double: return .double(d)
        case let a as [Any?]: return .list(try a.enumerated().map { try from($0.element, path: "\(path)[\($0.offset)]") })
        case let a as [Any]: return .list(try a.enumerated().map { try from($0.element, path: "\(path)[\($0.offset)]") })
        case let d as [String: Any?]:
            var out = JinjaDict()
            for key in d.keys.sorted() { out[key] = try from(d[key] ?? nil, path: "\(path).\(key)") }
            return .dict(out)
        case let d as [String: Any]:
            var out = JinjaDict()
            for key in d.keys.sorted() { out[key] = try from(d[key], path: "\(path).\(key)") }
            return .dict(out)
        default:
            throw TextError("chat template variable \(path): values of type \(type(of: any)) cannot be passed to a template")
        }
    }
}

/// A Python dict with string keys, keeping insertion order (as `tojson` and `items()` print it).
struct JinjaDict {
    private(set) var keys: [String] = []
    private var storage: [String: JinjaValue] = [:]

    init() {}
    init(_ pairs: [(String, JinjaValue)]) { for (k, v) in pairs { self[k] = v } }

    subscript(key: String) -> JinjaValue? {
        get { storage[key] }
        set {
            if let newValue {
                if storage[key] == nil { keys.append(key) }
                storage[key] = newValue
            } else if storage.removeValue(forKey: key) != nil {
                keys.removeAll { $0 == key }
            }
        }
    }

    var pairs: [(String, JinjaValue)] { keys.map { ($0, storage[$0]!) } }
}

/// `namespace()` object: attributes assigned inside a loop stay visible after it.
final class JinjaNamespace {
    var attributes = JinjaDict()
    init(_ attributes: JinjaDict) { self.attributes = attributes }
}

extension JinjaValue: Equatable {
    /// Python `==`: numbers compare across int/float/bool, containers structurally,
    /// Undefined equals only Undefined, a namespace only itself.
    static func == (lhs: JinjaValue, rhs: JinjaValue) -> Bool {
        switch (lhs, rhs) {
        case (.undefined, .undefined), (.none, .none): return true
        case (.string(let a), .string(let b)): return a == b
        case (.list(let a), .list(let b)), (.tuple(let a), .tuple(let b)): return a == b
        case (.dict(let a), .dict(let b)):
            return a.keys.count == b.keys.count && a.keys.allSatisfy { b[$0] != nil && a[$0] == b[$0] }
        case (.namespace(let a), .namespace(let b)): return a === b
        case (.function(let a), .function(let b)): return a == b
        default:
            if let a = lhs.numeric, let b = rhs.numeric { return a == b }
            return false
        }
    }

    /// bool, int and float as a number (Python's bool is an int subclass).
    var numeric: Double? {
        switch self {
        case .bool(let b): return b ? 1 : 0
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }

    /// bool and int as an integer.
    var integer: Int? {
        switch self {
        case .bool(let b): return b ? 1 : 0
        case .int(let i): return i
        default: return nil
        }
    }
}
