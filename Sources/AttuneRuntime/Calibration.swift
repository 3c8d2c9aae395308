import AttuneIR
import AttuneTensor
import Foundation

/// What `attune calibrate` measured on a model, stored as JSON with the model's hash so
/// it is never applied to another model: per (layer, q head) statistics of the row
/// maximum of the attention scores x = scale·q·k, and the `phi` `unified_max` uses.
///
/// `phi` is the median observed row maximum: `unified_max` is exact for any phi, and a
/// row only costs a recompute when its maximum leaves the fp32 window around phi, tens
/// of natural-log units wide (Docs/KERNELS.md), so a central value keeps both tails in.
public struct Calibration: Codable, Sendable, Equatable {
    public static let formatName = "attune-calibration"
    public static let currentVersion = 1

    public var format: String
    public var version: Int
    /// The model's name, for messages.
    public var model: String
    /// `ModelFingerprint` of the model calibrated; compile refuses any other model.
    public var modelHash: String
    public var sequences: Int
    public var tokens: Int
    public var layers: [Layer]
    /// `attune calibrate --kascade`: anchors and head maps for `kascade`.
    public var kascade: KascadeCalibration?

    public struct Layer: Codable, Sendable, Equatable {
        public var layer: Int
        public var heads: [Head]
    }

    /// Row-max statistics of one q head over every calibration row (natural-log units).
    public struct Head: Codable, Sendable, Equatable {
        public var phi: Double
        public var rows: Int
        public var rowMaxMin: Double
        public var rowMaxP01: Double
        public var rowMaxMean: Double
        public var rowMaxP99: Double
        public var rowMaxMax: Double
        /// Calibration rows whose maximum lies outside the fp32 window around `phi` at
        /// their own length (one split per row, the narrowest case): `unified_max` would
        /// recompute them.
        public var rowsOutsideWindow: Int
    }

    /// phi per q head, by layer.
    public var phiByLayer: [Int: [Double]] {
        Dictionary(uniqueKeysWithValues: layers.map { ($0.layer, $0.heads.map(\.phi)) })
    }

    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }

    /// Reads a calibration file; errors name the file and what is wrong with it.
    public static func load(_ path: String) throws -> Calibration {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw RuntimeError("\(path): cannot read calibration file: \(FileProblem.reading(path, error))")
        }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let calibration: Calibration
        do { calibration = try decoder.decode(Calibration.self, from: data) } catch {
            throw RuntimeError("\(path): not an Attune calibration file (\(Self.describe(error)))")
        }
        guard calibration.format == formatName else {
            throw RuntimeError("\(path): format is '\(calibration.format)', expected '\(formatName)'")
        }
        guard calibration.version == currentVersion else {
            throw RuntimeError("\(path): calibration version \(calibration.version); this Attune reads version \(currentVersion)")
        }
        for layer in calibration.layers {
            if let bad = layer.heads.firstIndex(where: { !Float($0.phi).isFinite }) {
                throw RuntimeError("\(path): layer \(layer.layer) head \(bad): phi must be finite in fp32")
            }
        }
        guard Set(calibration.layers.map(\.layer)).count == calibration.layers.count else {
            throw RuntimeError("\(path): a layer appears twice")
        }
        return calibration
    }

    /// Throws unless this calibration was recorded on `model`.
    public func check(against model: LoadedModel, path: String) throws {
        let hash = try ModelFingerprint.of(model)
        guard hash == modelHash else {
            throw RuntimeError("\(path) was calibrated on model '\(self.model)' (hash \(modelHash)); this model '\(model.name)' has hash \(hash): run `attune calibrate` on it")
        }
    }

    private static func describe(_ error: Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _): return "missing key '\(key.stringValue)'"
        case DecodingError.typeMismatch(_, let c), DecodingError.valueNotFound(_, let c):
            return "wrong type at '\(c.codingPath.map(\.stringValue).joined(separator: "."))'"
        case DecodingError.dataCorrupted(let c): return c.debugDescription
        default: return "\(error)"
        }
    }
}

/// A content hash of a model: its imported graph's text and every weight's values.
/// Two models with the same architecture and different weights differ.
public enum ModelFingerprint {
    public static func of(_ model: LoadedModel) throws -> String {
        // FNV-1a over the graph text's bytes, then over each weight's fp32 bit patterns
        // one word at a time (a byte-wise pass costs 4x for the same guarantee here).
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        let prime: UInt64 = 0x100_0000_01b3
        for b in TextFormat.print(model.graph).utf8 { h = (h ^ UInt64(b)) &* prime }
        for name in Set(model.graph.weights.map(\.name)).sorted() {
            for x in try model.weights.floats(name) { h = (h ^ UInt64(x.bitPattern)) &* prime }
        }
        return String(h, radix: 16)
    }
}
