/// tokenizer.json's "post_processor": adds special tokens around an encoded sequence
/// when the caller asks for special tokens (single sequences only; Attune never encodes pairs).
indirect enum PostProcessor {
    /// The ids of the "single" template, nil standing for the sequence.
    case template([Int32?])
    /// ByteLevel's post-processor only trims offsets; ids pass through.
    case byteLevel
    case sequence([PostProcessor])

    init(_ f: JSONFields) throws {
        switch try f.type() {
        case "TemplateProcessing":
            let specials = try f.fields("special_tokens")
            var items: [Int32?] = []
            for (n, raw) in try f.array("single").enumerated() {
                let item = try JSONFields(raw, path: "\(f.path).single[\(n)]")
                if let special = item.object["SpecialToken"] {
                    let name = try JSONFields(special, path: item.path + ".SpecialToken").string("id")
                    let entry = try JSONFields(specials.object[name], path: "\(specials.path)['\(name)']")
                    for id in try entry.array("ids") {
                        guard let id = id as? Int, let id32 = Int32(exactly: id) else {
                            throw TextError("\(entry.path).ids must hold token ids")
                        }
                        items.append(id32)
                    }
                } else if let sequence = item.object["Sequence"] {
                    let which = try JSONFields(sequence, path: item.path + ".Sequence").string("id")
                    guard which == "A" else { throw TextError("\(item.path): the single template can only hold sequence A, not '\(which)'") }
                    items.append(nil)
                } else {
                    throw TextError("\(item.path) must be a SpecialToken or a Sequence")
                }
            }
            self = .template(items)
        case "ByteLevel": self = .byteLevel
        case "Sequence":
            self = .sequence(try f.array("processors").enumerated().map {
                try PostProcessor(JSONFields($0.element, path: "\(f.path).processors[\($0.offset)]"))
            })
        case "BertProcessing", "RobertaProcessing":
            func token(_ key: String) throws -> Int32 {
                guard let pair = f.object[key] as? [Any], pair.count == 2, let id = pair[1] as? Int, let id32 = Int32(exactly: id) else {
                    throw TextError("\(f.path).\(key) must be [token, id]")
                }
                return id32
            }
            self = .template([try token("cls"), nil, try token("sep")])
        case let other: throw TextError("tokenizer.json: post-processor type '\(other)' is not supported")
        }
    }

    func process(_ ids: [Int32]) -> [Int32] {
        switch self {
        case .template(let items): return items.flatMap { $0.map { [$0] } ?? ids }
        case .byteLevel: return ids
        case .sequence(let all): return all.reduce(ids) { $1.process($0) }
        }
    }
}
