import AttuneKernels
import XCTest

/// Every registered kernel against the one table of which problems it accepts
/// (`KernelScope.table`, which `attune check` runs too).
final class KernelScopeTests: XCTestCase {
    func testEveryKernelAgreesWithTheTable() {
        for row in KernelScope.table {
            for kernel in KernelRegistry.all {
                XCTAssertNil(KernelScope.mismatch(kernel, row), "\(kernel.name) on \(row.name) (\(row.problem))")
            }
        }
    }

    /// The table names only registered kernels, and a row that disagrees with a kernel, in
    /// either direction, is reported.
    func testTheTableCatchesADisagreement() throws {
        for row in KernelScope.table {
            for name in row.refused.keys { XCTAssertNoThrow(try KernelRegistry.kernel(named: name), "\(row.name): \(name)") }
        }
        var row = try XCTUnwrap(KernelScope.table.first { $0.name == "softcap" })
        row.refused["flash"] = "soft-capping"
        XCTAssertEqual(KernelScope.mismatch(FlashKernel(), row), "the table says refused (\"soft-capping\"), the kernel says accepted")
        row.refused["unified_max"] = nil
        XCTAssertEqual(KernelScope.mismatch(UnifiedMaxKernel(), row),
                       "the table says accepted, the kernel refuses: unified_max does not implement logit soft-capping (softcap=30); flash does")
    }
}
