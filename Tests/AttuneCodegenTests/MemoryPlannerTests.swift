import AttuneCodegen
import XCTest

final class MemoryPlannerTests: XCTestCase {
    /// Buffers whose lifetimes do not overlap share bytes; overlapping ones never do.
    func testDisjointLifetimesShareAndOverlappingOnesDoNot() {
        let buffers = [
            BufferLifetime(floats: 100, firstNode: 0, lastNode: 2),
            BufferLifetime(floats: 100, firstNode: 1, lastNode: 3),
            BufferLifetime(floats: 100, firstNode: 3, lastNode: 5),  // overlaps #1 at node 3, not #0
            BufferLifetime(floats: 50, firstNode: 4, lastNode: 4),
        ]
        let plan = MemoryPlanner.plan(buffers)
        func overlap(_ a: Int, _ b: Int) -> Bool {
            let sa = plan.offsets[a], sb = plan.offsets[b]
            return sa < sb + buffers[b].floats && sb < sa + buffers[a].floats
        }
        for a in buffers.indices {
            for b in buffers.indices where a < b {
                let live = buffers[a].firstNode <= buffers[b].lastNode && buffers[b].firstNode <= buffers[a].lastNode
                if live { XCTAssertFalse(overlap(a, b), "buffers \(a) and \(b) are live together but share bytes") }
            }
        }
        XCTAssertEqual(plan.offsets[2], plan.offsets[0], "buffer 2 reuses buffer 0's bytes")
        XCTAssertEqual(plan.offsets.map { $0 % 16 }, [0, 0, 0, 0], "64-byte aligned")
        XCTAssertLessThan(plan.arenaFloats, plan.unsharedFloats)
    }

    /// A chain where each value dies as the next is born needs two buffers, however long.
    func testChainNeedsTwoBuffers() {
        let buffers = (0..<50).map { BufferLifetime(floats: 64, firstNode: $0, lastNode: $0 + 1) }
        XCTAssertEqual(MemoryPlanner.plan(buffers).arenaFloats, 128)
    }

    /// A decoder layer's pattern: a long-lived residual, a short value that dies before a
    /// large one is born. Placed largest first, the arena is the peak of live bytes (the
    /// large buffer plus the residual); in order of definition the large buffer would go
    /// above both small ones (1920 floats).
    func testALargeBufferDoesNotStackAboveDeadSmallOnes() {
        let buffers = [
            BufferLifetime(floats: 160, firstNode: 0, lastNode: 1),   // dies before the large one
            BufferLifetime(floats: 160, firstNode: 0, lastNode: 5),   // residual stream
            BufferLifetime(floats: 1600, firstNode: 2, lastNode: 3),  // MLP intermediate
        ]
        let plan = MemoryPlanner.plan(buffers)
        XCTAssertEqual(plan.arenaFloats, 1760)
        XCTAssertEqual(plan.offsets, [0, 1600, 0])
    }
}
