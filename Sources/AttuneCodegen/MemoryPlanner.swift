/// Liveness-based placement of activation buffers in one arena.
///
/// Each buffer is live from the node that writes it to the last node that reads it;
/// buffers whose lifetimes do not overlap may share bytes. Placement is greedy
/// first-fit, largest buffer first (then in order of definition), with 64-byte
/// alignment. Largest first: placed in order of definition, a decoder's long-lived
/// residual stream took the low offsets and each MLP's [rows, intermediate] buffer went
/// above it and the dead buffers around it (16.5 MiB of arena touched by a 512-row
/// Qwen2.5-0.5B prefill); placed first, the intermediates share offset 0 and the small
/// buffers fit beside them. Sizes are upper bounds: symbolic dims take the bounds the
/// module is compiled for (`seq` <= max chunk, `kv` <= max context).
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
            (-buffers[$0].floats, buffers[$0].firstNode, $0) < (-buffers[$1].floats, buffers[$1].firstNode, $1)
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
