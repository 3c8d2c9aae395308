import CAttuneKernels
import Dispatch
import Foundation
import XCTest

/// The kernels' scratch allocator (Kernels/scratch.c): alignment, the pool's reuse rule
/// for large blocks, and that concurrent users never share bytes.
final class ScratchPoolTests: XCTestCase {
    static let large = 1 << 20   // pooled (≥ 256 KiB)

    func testEveryBlockIsSixtyFourByteAligned() {
        for bytes in [1, 63, 4096, 300 << 10, Self.large, 3 * Self.large + 7] {
            let p = attune_scratch_alloc(bytes)!
            XCTAssertEqual(Int(bitPattern: p) % 64, 0, "\(bytes) bytes")
            attune_scratch_free(p)
            let q = attune_aligned_alloc(bytes)!
            XCTAssertEqual(Int(bitPattern: q) % 64, 0, "\(bytes) bytes, not pooled")
            free(q)
        }
        attune_scratch_free(nil)
        attune_scratch_trim()
    }

    /// A freed large block serves the next request of its size (no new mapping, no new page
    /// faults) but not one of less than half its size, which would pin it.
    func testAFreedLargeBlockIsReusedForItsSizeButNotForASmallRequest() {
        attune_scratch_trim()
        let a = attune_scratch_alloc(Self.large)!
        a.storeBytes(of: UInt64(0xfeed), as: UInt64.self)
        attune_scratch_free(a)
        let again = attune_scratch_alloc(Self.large - 4096)!
        XCTAssertEqual(again, a)
        let small = attune_scratch_alloc(300 << 10)!   // below half of a, while a is taken
        XCTAssertNotEqual(small, a)
        attune_scratch_free(again)
        let stillSmall = attune_scratch_alloc(300 << 10)!   // a is free but twice too large
        XCTAssertNotEqual(stillSmall, a)
        attune_scratch_free(small)
        attune_scratch_free(stillSmall)
        attune_scratch_trim()
    }

    /// Eight threads allocate, fill, check and free blocks of mixed sizes, pooled and
    /// not: a block handed to two users at once, or freed into the wrong place, shows up
    /// as another thread's pattern.
    func testConcurrentUsersNeverShareBytes() {
        let sizes = [512, 70_000, 300 << 10, Self.large, 2 * Self.large, 5 << 20]
        let failures = Failures()
        DispatchQueue.concurrentPerform(iterations: 8) { t in
            var held: [(UnsafeMutableRawPointer, Int, UInt8)] = []
            for i in 0..<200 {
                let bytes = sizes[(i * 7 + t) % sizes.count]
                let tag = UInt8(truncatingIfNeeded: t * 31 + i)
                let p = attune_scratch_alloc(bytes)!
                p.initializeMemory(as: UInt8.self, repeating: tag, count: bytes)
                held.append((p, bytes, tag))
                if held.count > 3 || i == 199 {
                    for (q, n, want) in held {
                        let got = q.assumingMemoryBound(to: UInt8.self)
                        if got[0] != want || got[n / 2] != want || got[n - 1] != want { failures.add() }
                        attune_scratch_free(q)
                    }
                    held.removeAll()
                }
            }
        }
        XCTAssertEqual(failures.count, 0)
        attune_scratch_trim()
    }
}

private final class Failures: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func add() { lock.lock(); n += 1; lock.unlock() }
    var count: Int { lock.lock(); defer { lock.unlock() }; return n }
}
