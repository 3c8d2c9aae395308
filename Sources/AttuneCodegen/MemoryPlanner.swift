/// Liveness-based placement of activation buffers in one arena.
///
/// Each buffer is live from the node that writes it to the last node that reads it;
/// buffers whose lifetimes do not overlap may share bytes. Placement is greedy
/// first-fit in order of definition (largest first among buffers defined by the same
/// node), with 64-byte alignment. Sizes are upper bounds: symbolic dims take the
/// bounds the module is compiled for (`seq` <= max chunk, `kv` <= max context).
public struct MemoryPlan: Sendable, Equatable {
    /// Offset in floats of each buffer.
    public var offsets: [Int]
    /// Arena size in floats.
    public var arenaFloats: Int
    /// What the arena would need without reuse, for `inspect`.
    public var unsharedFloats: Int
}

public struct BufferLifetime: Sendable, Equatable {
    public var floats: Int
    public var firstNode: Int
    public var lastNode: Int

    public init(floats: Int, firstNode: Int, lastNode: Int) {
        self.floats = floats
        self.firstNode = firstNode
        self.lastNode = lastNode
    }
}

public enum MemoryPlanner {
    static let alignment = 16

    public static func plan(_ buffers: [BufferLifetime]) -> MemoryPlan {
        let order = buffers.indices.sorted {
            (buffers[$0].firstNode, -buffers[$0].floats, $0) < (buffers[$1].firstNode, -buffers[$1].floats, $1)
        }
        var offsets = [Int](repeating: 0, count: buffers.count)
        var placed: [Int] = []
        var arena = 0
        for b in order {
            let size = (buffers[b].floats + alignment - 1) / alignment * alignment
            // Occupied ranges of buffers still live when b is born.
            let busy = placed.filter { buffers[$0].lastNode >= buffers[b].firstNode && buffers[b].lastNode >= buffers[$0].firstNode }
                .map { (offsets[$0], offsets[$0] + (buffers[$0].floats + alignment - 1) / alignment * alignment) }
                .sorted { $0.0 < $1.0 }
            var candidate = 0
            for (start, end) in busy {
                if candidate + size <= start { break }
                candidate = max(candidate, end)
            }
            offsets[b] = candidate
            arena = max(arena, candidate + size)
            placed.append(b)
        }
        let unshared = buffers.reduce(0) { $0 + ($1.floats + alignment - 1) / alignment * alignment }
        return MemoryPlan(offsets: offsets, arenaFloats: arena, unsharedFloats: unshared)
    }
}
