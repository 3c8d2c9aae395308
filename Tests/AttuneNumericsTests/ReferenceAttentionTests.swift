import Foundation
import XCTest
@testable import AttuneNumerics

/// Deterministic input generator shared with the (uncommitted) numpy script
/// that produced the cross-check literals: x_n = amp * sin(0.7 n + seed).
private func gen(_ n: Int, seed: Double, amp: Double) -> [Double] {
    (0..<n).map { amp * sin(0.7 * Double($0) + seed) }
}

private func assertClose(_ a: [Double], _ b: [Double], tol: Double = 1e-12,
                         _ msg: String = "", file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, "count \(msg)", file: file, line: line)
    for i in 0..<min(a.count, b.count) {
        if a[i] == b[i] { continue }  // covers equal infinities
        XCTAssertEqual(a[i], b[i], accuracy: tol, "index \(i) \(msg)", file: file, line: line)
    }
}

final class ReferenceAttentionTests: XCTestCase {

    // MARK: Closed-form cases

    func testTwoKeyClosedForm() throws {
        // scores 0 and ln 3 -> weights 1/4, 3/4; O = 2/4 + 3*6/4 = 5; LSE = ln 4.
        let p = ReferenceAttentionProblem(qHeads: 1, qLen: 1, kvLen: 2, qkDim: 1, scale: 1)
        let r = try ReferenceAttention.softmax(p, q: [1], k: [0, log(3.0)], v: [2, 6])
        XCTAssertEqual(r.o[0], 5, accuracy: 1e-14)
        XCTAssertEqual(r.lse[0], log(4.0), accuracy: 1e-14)
    }

    func testDefaultScaleIsInverseSqrtDim() throws {
        // Dqk = 4 -> scale 1/2. q·k1 = 2*ln3 -> score ln 3 -> same as above.
        let p = ReferenceAttentionProblem(qHeads: 1, qLen: 1, kvLen: 2, qkDim: 4, vDim: 1)
        XCTAssertEqual(p.scale, 0.5)
        let l3 = log(3.0)
        let r = try ReferenceAttention.softmax(p, q: [1, 1, 0, 0], k: [0, 0, 0, 0, l3, l3, 0, 0], v: [2, 6])
        XCTAssertEqual(r.o[0], 5, accuracy: 1e-14)
        XCTAssertEqual(r.lse[0], log(4.0), accuracy: 1e-14)
    }

    func testUniformScoresGiveMeanOfV() throws {
        let p = ReferenceAttentionProblem(qHeads: 1, qLen: 2, kvLen: 4, qkDim: 3, vDim: 2)
        let q = [Double](repeating: 0, count: 6)
        let k = gen(12, seed: 0.3, amp: 5)
        let v: [Double] = [1, 10, 2, 20, 3, 30, 6, 40]
        let r = try ReferenceAttention.softmax(p, q: q, k: k, v: v)
        assertClose(r.o, [3, 25, 3, 25], tol: 1e-14)
        assertClose(r.lse, [log(4.0), log(4.0)], tol: 1e-14)
    }

    func testSingleVisibleKeyGivesThatRowExactly() throws {
        // Causal, Lq == Lk: row 0 sees key 0 only.
        let p = ReferenceAttentionProblem(qHeads: 1, qLen: 3, kvLen: 3, qkDim: 2, vDim: 3, causal: true)
        let q = gen(6, seed: 0.1, amp: 2), k = gen(6, seed: 0.2, amp: 2)
        let v: [Double] = [0.125, -7.5, 3.25, 9, 9, 9, 1, 1, 1]
        let r = try ReferenceAttention.softmax(p, q: q, k: k, v: v)
        XCTAssertEqual(Array(r.o[0..<3]), [0.125, -7.5, 3.25])  // exact
        XCTAssertEqual(r.lse[0], p.scale * (q[0] * k[0] + q[1] * k[1]), accuracy: 1e-15)
    }

    // MARK: Mask

    func testCausalBottomRightAlignment() throws {
        // Lq = 2, Lk = 4, default qOffset = 2: row 0 sees keys 0...2, row 1 sees 0...3.
        let v: [Double] = [1, 2, 4, 8]
        var p = ReferenceAttentionProblem(qHeads: 1, qLen: 2, kvLen: 4, qkDim: 1, causal: true)
        XCTAssertEqual(p.resolvedQOffset, 2)
        var r = try ReferenceAttention.softmax(p, q: [0, 0], k: [1, 2, 3, 4], v: v)
        assertClose(r.o, [7.0 / 3, 15.0 / 4], tol: 1e-14)
        assertClose(r.lse, [log(3.0), log(4.0)], tol: 1e-14)
        // Explicit qOffset = 0 (prefill-style top-left): row 0 sees key 0, row 1 keys 0, 1.
        p.qOffset = 0
        r = try ReferenceAttention.softmax(p, q: [0, 0], k: [1, 2, 3, 4], v: v)
        assertClose(r.o, [1, 1.5], tol: 1e-14)
        assertClose(r.lse, [0, log(2.0)], tol: 1e-14)
    }

    func testCausalSlidingWindow() throws {
        // Lq = Lk = 5, causal, window 2: row i sees keys i-1, i.
        let p = ReferenceAttentionProblem(qHeads: 1, qLen: 5, kvLen: 5, qkDim: 1, causal: true, window: 2)
        let v: [Double] = [1, 2, 4, 8, 16]
        let r = try ReferenceAttention.softmax(p, q: [0, 0, 0, 0, 0], k: [1, 2, 3, 4, 5], v: v)
        assertClose(r.o, [1, 1.5, 3, 6, 12], tol: 1e-14)
        assertClose(r.lse, [0, log(2.0), log(2.0), log(2.0), log(2.0)], tol: 1e-14)
    }

    func testNonCausalWindowSeesAllFutureKeys() throws {
        // Non-causal, window 2, qOffset 0: row i sees keys j >= i - 1 (all later keys).
        let p = ReferenceAttentionProblem(qHeads: 1, qLen: 3, kvLen: 4, qkDim: 1, qOffset: 0, window: 2)
        let v: [Double] = [1, 2, 4, 8]
        let r = try ReferenceAttention.softmax(p, q: [0, 0, 0], k: [0, 0, 0, 0], v: v)
        assertClose(r.o, [15.0 / 4, 15.0 / 4, 14.0 / 3], tol: 1e-14)
        assertClose(r.lse, [log(4.0), log(4.0), log(3.0)], tol: 1e-14)
    }

    func testFullyMaskedRowsGiveZeroAndMinusInfinity() throws {
        // Lq = 3 > Lk = 1, causal: qOffset = -2, rows 0 and 1 see nothing.
        let p = ReferenceAttentionProblem(qHeads: 1, qLen: 3, kvLen: 1, qkDim: 1, vDim: 2, causal: true)
        let r = try ReferenceAttention.softmax(p, q: [1, 1, 1], k: [.nan], v: [5, 6])
        XCTAssertEqual(Array(r.o[0..<4]), [0, 0, 0, 0])
        XCTAssertEqual(r.lse[0], -.infinity)
        XCTAssertEqual(r.lse[1], -.infinity)
        // Row 2 reads the NaN key, so it is NaN (propagation), but masked rows are not.
        XCTAssertTrue(r.lse[2].isNaN)

        // Window pushing every key out of reach, explicit negative offset.
        let p2 = ReferenceAttentionProblem(qHeads: 1, qLen: 1, kvLen: 3, qkDim: 1, causal: true, qOffset: -1)
        let r2 = try ReferenceAttention.softmax(p2, q: [1], k: [1, 2, 3], v: [1, 2, 3])
        XCTAssertEqual(r2.o, [0])
        XCTAssertEqual(r2.lse, [-.infinity])
        let s2 = try ReferenceAttention.sigmoid(p2, bias: 0, q: [1], k: [1, 2, 3], v: [1, 2, 3])
        XCTAssertEqual(s2, [0])
    }

    func testEmptyKV() throws {
        let p = ReferenceAttentionProblem(batch: 2, qHeads: 2, qLen: 3, kvLen: 0, qkDim: 4, vDim: 2)
        let q = gen(p.qCount, seed: 0, amp: 1)
        let r = try ReferenceAttention.softmax(p, q: q, k: [], v: [])
        XCTAssertEqual(r.o, [Double](repeating: 0, count: 24))
        XCTAssertEqual(r.lse, [Double](repeating: -.infinity, count: 12))
        XCTAssertEqual(try ReferenceAttention.sigmoid(p, bias: 1, q: q, k: [], v: []),
                       [Double](repeating: 0, count: 24))
    }

    func testEmptyQueries() throws {
        let p = ReferenceAttentionProblem(qHeads: 2, qLen: 0, kvLen: 3, qkDim: 2)
        let r = try ReferenceAttention.softmax(p, q: [], k: gen(p.kCount, seed: 0, amp: 1),
                                               v: gen(p.vCount, seed: 1, amp: 1))
        XCTAssertEqual(r.o, [])
        XCTAssertEqual(r.lse, [])
    }

    func testNaNInMaskedKVIsNeverRead() throws {
        // B1 H2 Lq3 Lk6 causal window 3, default qOffset 3: row i (p = 3 + i)
        // sees keys p-2...p. Keys 0 and 1 are never visible to row 1/2, key 0
        // and 5 are invisible to row 0, etc.
        let p = ReferenceAttentionProblem(qHeads: 2, qLen: 3, kvLen: 6, qkDim: 4, vDim: 3,
                                          causal: true, window: 3)
        let q = gen(p.qCount, seed: 0.1, amp: 1.5)
        let k = gen(p.kCount, seed: 0.2, amp: 1.5)
        let v = gen(p.vCount, seed: 0.3, amp: 1.5)
        let clean = try ReferenceAttention.softmax(p, q: q, k: k, v: v)
        let cleanS = try ReferenceAttention.sigmoid(p, bias: 0.25, q: q, k: k, v: v)

        // Poison key 0 (invisible to all rows): p ranges 3...5, window 3 -> j >= 1.
        var kp = k, vp = v
        for h in 0..<2 {
            for d in 0..<4 { kp[(h * 6 + 0) * 4 + d] = d.isMultiple(of: 2) ? .nan : .infinity }
            for d in 0..<3 { vp[(h * 6 + 0) * 3 + d] = d == 1 ? -.infinity : .nan }
        }
        let dirty = try ReferenceAttention.softmax(p, q: q, k: kp, v: vp)
        XCTAssertEqual(dirty.o, clean.o)       // bit-identical
        XCTAssertEqual(dirty.lse, clean.lse)
        XCTAssertEqual(try ReferenceAttention.sigmoid(p, bias: 0.25, q: q, k: kp, v: vp), cleanS)

        // Poison key 5 (future for rows 0, 1): only row 2 may change.
        kp = k
        for h in 0..<2 { kp[(h * 6 + 5) * 4 + 1] = .nan }
        let partial = try ReferenceAttention.softmax(p, q: q, k: kp, v: v)
        for h in 0..<2 {
            for i in 0..<2 {
                let row = h * 3 + i
                XCTAssertEqual(partial.lse[row], clean.lse[row])
                XCTAssertEqual(Array(partial.o[row * 3..<row * 3 + 3]), Array(clean.o[row * 3..<row * 3 + 3]))
            }
            XCTAssertTrue(partial.lse[h * 3 + 2].isNaN)
        }
    }

    func testNaNInVisibleQueryPropagates() throws {
        let p = ReferenceAttentionProblem(qHeads: 1, qLen: 2, kvLen: 3, qkDim: 2, vDim: 2)
        var q = gen(4, seed: 0.5, amp: 1)
        let k = gen(6, seed: 0.6, amp: 1), v = gen(6, seed: 0.7, amp: 1)
        let clean = try ReferenceAttention.softmax(p, q: q, k: k, v: v)
        q[3] = .nan  // row 1
        let r = try ReferenceAttention.softmax(p, q: q, k: k, v: v)
        XCTAssertEqual(Array(r.o[0..<2]), Array(clean.o[0..<2]))
        XCTAssertEqual(r.lse[0], clean.lse[0])
        XCTAssertTrue(r.o[2].isNaN && r.o[3].isNaN && r.lse[1].isNaN)
        let s = try ReferenceAttention.sigmoid(p, bias: 0, q: q, k: k, v: v)
        XCTAssertFalse(s[0].isNaN || s[1].isNaN)
        XCTAssertTrue(s[2].isNaN && s[3].isNaN)
    }

    func testNaNInVisibleValuePropagatesToItsColumn() throws {
        let p = ReferenceAttentionProblem(qHeads: 1, qLen: 1, kvLen: 2, qkDim: 1, vDim: 2)
        let r = try ReferenceAttention.softmax(p, q: [1], k: [1, 2], v: [1, .nan, 3, 4])
        XCTAssertFalse(r.o[0].isNaN)
        XCTAssertTrue(r.o[1].isNaN)
        XCTAssertFalse(r.lse[0].isNaN)
    }

    // MARK: GQA

    func testGQAHeadMapping() throws {
        // Hq = 4, Hkv = 2: q heads 0, 1 use kv head 0; 2, 3 use kv head 1.
        let p = ReferenceAttentionProblem(qHeads: 4, kvHeads: 2, qLen: 1, kvLen: 2, qkDim: 1, scale: 1)
        let q: [Double] = [0, 0, 0, 0]  // uniform weights -> mean of the kv head's V
        let k: [Double] = [1, 2, 3, 4]
        let v: [Double] = [10, 20, 100, 300]
        let r = try ReferenceAttention.softmax(p, q: q, k: k, v: v)
        XCTAssertEqual(r.o, [15, 15, 200, 200])

        // Same against an independent MHA run with K/V duplicated per q head.
        let g = ReferenceAttentionProblem(batch: 2, qHeads: 4, kvHeads: 2, qLen: 3, kvLen: 5, qkDim: 3, vDim: 2,
                                          causal: true)
        let gq = gen(g.qCount, seed: 1.1, amp: 1.3), gk = gen(g.kCount, seed: 1.2, amp: 1.3)
        let gv = gen(g.vCount, seed: 1.3, amp: 1.3)
        var mk = [Double](), mv = [Double]()
        for b in 0..<2 {
            for h in 0..<4 {
                let hk = h / 2
                let first: Int = (b * 2 + hk) * 5  // first key row of this kv head
                mk.append(contentsOf: gk[(first * 3)..<((first + 5) * 3)])
                mv.append(contentsOf: gv[(first * 2)..<((first + 5) * 2)])
            }
        }
        var m = g
        m.kvHeads = 4
        let gr = try ReferenceAttention.softmax(g, q: gq, k: gk, v: gv)
        let mr = try ReferenceAttention.softmax(m, q: gq, k: mk, v: mv)
        XCTAssertEqual(gr.o, mr.o)
        XCTAssertEqual(gr.lse, mr.lse)
        XCTAssertEqual(try ReferenceAttention.sigmoid(g, bias: 0.1, q: gq, k: gk, v: gv),
                       try ReferenceAttention.sigmoid(m, bias: 0.1, q: gq, k: mk, v: mv))
    }

    // MARK: Sigmoid

    func testSigmoidHandCase() throws {
        // scores 0 and 2 (scale 1), bias 0: O = 4 * 1/2 + 10 * 1/(1+e^-2).
        let p = ReferenceAttentionProblem(qHeads: 1, qLen: 1, kvLen: 2, qkDim: 1, scale: 1)
        var o = try ReferenceAttention.sigmoid(p, bias: 0, q: [1], k: [0, 2], v: [4, 10])
        XCTAssertEqual(o[0], 2 + 10 / (1 + exp(-2.0)), accuracy: 1e-14)
        // bias -3: z = -3, -1.
        o = try ReferenceAttention.sigmoid(p, bias: -3, q: [1], k: [0, 2], v: [4, 10])
        let expected: Double = 4.0 / (1.0 + exp(3.0)) + 10.0 / (1.0 + exp(1.0))
        XCTAssertEqual(o[0], expected, accuracy: 1e-14)
        // Causal with qOffset 0: only key 0 visible.
        let pc = ReferenceAttentionProblem(qHeads: 1, qLen: 1, kvLen: 2, qkDim: 1, scale: 1, causal: true, qOffset: 0)
        o = try ReferenceAttention.sigmoid(pc, bias: 0, q: [1], k: [0, .nan], v: [4, .nan])
        XCTAssertEqual(o, [2])
    }

    func testSigmoidIsStableAtExtremes() throws {
        let p = ReferenceAttentionProblem(qHeads: 1, qLen: 1, kvLen: 2, qkDim: 1, scale: 1)
        let o = try ReferenceAttention.sigmoid(p, bias: 0, q: [1], k: [1000, -1000], v: [3, 5])
        XCTAssertEqual(o, [3])
        XCTAssertEqual(ReferenceAttention.stableSigmoid(-800), exp(-800.0))
        XCTAssertEqual(ReferenceAttention.stableSigmoid(800), 1)
        XCTAssertTrue(ReferenceAttention.stableSigmoid(.nan).isNaN)
    }

    // MARK: numpy cross-checks (literals computed once with float64 numpy)

    func testNumpyCrossCheckGQACausal() throws {
        // B1 Hq2 Hkv1 Lq3 Lk5 Dqk4 Dv3, causal, default offset & scale.
        let p = ReferenceAttentionProblem(qHeads: 2, kvHeads: 1, qLen: 3, kvLen: 5, qkDim: 4, vDim: 3, causal: true)
        let r = try ReferenceAttention.softmax(p, q: gen(p.qCount, seed: 0.1, amp: 1.5),
                                               k: gen(p.kCount, seed: 0.2, amp: 1.2),
                                               v: gen(p.vCount, seed: 0.3, amp: 2.0))
        assertClose(r.o, [-0.39115767710226046, 0.3177040901256238, 0.8771446595040813, 1.0060572238994967,
                          0.6892279225461392, 0.0482439597359694, -0.2314818881470346, -0.20027263678666998,
                          -0.07487203499926175, 1.0572233589175544, 0.16919569234620974, -0.7984073520911776,
                          -0.8618132984069984, -0.5922684207817837, -0.04417045041354006, 0.5171775451705378,
                          1.0832262504651535, 1.1398167242889483])
        assertClose(r.lse, [2.47898288613442, 2.3558688713266873, 2.568354925157789, 1.359293752771303,
                            1.5568157276853487, 1.8692790773709442])
    }

    func testNumpyCrossCheckWindowOffsetBatch() throws {
        // B2 Hq2 Hkv2 Lq4 Lk6 Dqk3 Dv2, non-causal, window 2, qOffset 1, scale 0.8.
        let p = ReferenceAttentionProblem(batch: 2, qHeads: 2, qLen: 4, kvLen: 6, qkDim: 3, vDim: 2,
                                          scale: 0.8, qOffset: 1, window: 2)
        let r = try ReferenceAttention.softmax(p, q: gen(p.qCount, seed: 0.4, amp: 1.0),
                                               k: gen(p.kCount, seed: 0.5, amp: 1.3),
                                               v: gen(p.vCount, seed: 0.6, amp: 1.7))
        assertClose(r.o, [-0.2741164936872623, 0.24848474346680677, 0.4487109943401662, 0.5038034436676079,
                          0.5102036723543732, 0.10428475618382282, -1.4957566444998869, -0.985035145735276,
                          0.04153497707120622, -0.3583540239940914, -0.6827606226777904, -0.6885360064933661,
                          0.9175597016621551, 1.4486513852167737, 1.078800778175925, 0.4694387335383262,
                          0.09524416694209177, 0.526670691933479, 0.49263830266499425, -0.4217383308356522,
                          -0.628292473335367, -0.7909036242157302, -1.124614922617592, -0.3093812645166401,
                          -0.23571630312690278, 0.29112601558213475, 0.4833513498352188, 0.5096763837709173,
                          0.4648149676486184, 0.07524096364907329, -1.4913927922591097, -0.9276607493414364])
        assertClose(r.lse, [2.808798625814582, 1.9037010547066624, 2.530260204932145, 2.1280031392024554,
                            1.9984404325610314, 2.5696369154482945, 2.177611370679964, 1.3085193060135472,
                            2.5601221306923314, 2.243626262201412, 1.4768603232700388, 1.8546199976736077,
                            2.870223018293166, 1.9253192523206317, 2.4301905582412795, 2.1880876468835115])
    }

    func testNumpyCrossCheckSigmoid() throws {
        // B1 Hq4 Hkv2 Lq3 Lk4 Dqk2 Dv2, causal, window 3, bias -0.5, default scale.
        let p = ReferenceAttentionProblem(qHeads: 4, kvHeads: 2, qLen: 3, kvLen: 4, qkDim: 2, vDim: 2,
                                          causal: true, window: 3)
        let o = try ReferenceAttention.sigmoid(p, bias: -0.5, q: gen(p.qCount, seed: 0.7, amp: 2.0),
                                               k: gen(p.kCount, seed: 0.8, amp: 1.5),
                                               v: gen(p.vCount, seed: 0.9, amp: 1.1))
        assertClose(o, [1.4163383158948286, 1.1376472551057237, 1.258539809378602, 0.8914266046453341,
                        -1.1225232182636211, -1.2277070699325532, 0.09166925659095368, 0.049683508033306005,
                        0.9141211885941838, 0.7081163486032264, 0.6307139445035043, 0.06928922827992462,
                        0.4934017304600144, 0.5524238997675622, 0.1119097281891476, -0.2055088026734032,
                        -0.48539874792434734, -0.7255753888476109, 1.204345239815652, 1.4223324396545596,
                        1.1275573133254573, 0.9279845419146935, -0.7947975350309768, -1.1757560633001674])
    }

    // MARK: Misc

    func testLargeScoresDoNotOverflow() throws {
        // Max subtraction: scores around 1e4 must not overflow exp.
        let p = ReferenceAttentionProblem(qHeads: 1, qLen: 1, kvLen: 2, qkDim: 1, scale: 1)
        let r = try ReferenceAttention.softmax(p, q: [100], k: [100, 100 + log(3.0) / 100], v: [2, 6])
        XCTAssertEqual(r.o[0], 5, accuracy: 1e-9)
        XCTAssertEqual(r.lse[0], 10000 + log(4.0), accuracy: 1e-9)
    }

    func testIsVisible() {
        XCTAssertTrue(ReferenceAttention.isVisible(key: 5, queryPosition: 5, causal: true, window: nil))
        XCTAssertFalse(ReferenceAttention.isVisible(key: 6, queryPosition: 5, causal: true, window: nil))
        XCTAssertTrue(ReferenceAttention.isVisible(key: 6, queryPosition: 5, causal: false, window: nil))
        XCTAssertTrue(ReferenceAttention.isVisible(key: 5, queryPosition: 5, causal: true, window: 1))
        XCTAssertFalse(ReferenceAttention.isVisible(key: 4, queryPosition: 5, causal: true, window: 1))
        XCTAssertTrue(ReferenceAttention.isVisible(key: 3, queryPosition: 5, causal: true, window: 3))
        XCTAssertFalse(ReferenceAttention.isVisible(key: 2, queryPosition: 5, causal: true, window: 3))
        XCTAssertFalse(ReferenceAttention.isVisible(key: 0, queryPosition: -1, causal: true, window: nil))
    }

    func testValidationErrors() {
        func expectError(_ p: ReferenceAttentionProblem, q: Int? = nil, k: Int? = nil, v: Int? = nil,
                         _ fragment: String, line: UInt = #line) {
            let qa = [Double](repeating: 0, count: q ?? max(0, p.qCount))
            let ka = [Double](repeating: 0, count: k ?? max(0, p.kCount))
            let va = [Double](repeating: 0, count: v ?? max(0, p.vCount))
            XCTAssertThrowsError(try ReferenceAttention.softmax(p, q: qa, k: ka, v: va), line: line) { e in
                guard let e = e as? ReferenceAttentionError else { return XCTFail("wrong error type", line: line) }
                XCTAssertTrue(e.message.contains(fragment), "\(e.message)", line: line)
            }
            XCTAssertThrowsError(try ReferenceAttention.sigmoid(p, bias: 0, q: qa, k: ka, v: va), line: line)
        }
        let ok = ReferenceAttentionProblem(batch: 1, qHeads: 4, kvHeads: 2, qLen: 3, kvLen: 5, qkDim: 4, vDim: 2)
        expectError(ok, q: ok.qCount - 1, "q has")
        expectError(ok, k: ok.kCount + 1, "k has")
        expectError(ok, v: 0, "v has")
        var p = ok; p.kvHeads = 3
        expectError(p, "multiple of kvHeads")
        p = ok; p.window = 0
        expectError(p, "window")
        p = ok; p.scale = .infinity
        expectError(p, "scale")
        p = ok; p.scale = .nan
        expectError(p, "scale")
        p = ok; p.qLen = -1
        expectError(p, q: 0, "qLen")
        p = ok; p.qkDim = 0
        expectError(p, "qkDim")
        p = ok; p.qOffset = Int.max
        expectError(p, "overflow")
        XCTAssertThrowsError(try ReferenceAttention.sigmoid(ok, bias: .nan,
                                                            q: [Double](repeating: 0, count: ok.qCount),
                                                            k: [Double](repeating: 0, count: ok.kCount),
                                                            v: [Double](repeating: 0, count: ok.vCount)))
        XCTAssertNoThrow(try ok.validate())
    }

    func testModerateSizeRuns() throws {
        // A mid-size problem, checked for sanity (finite, LSE >= max score bound)
        // and timed loosely to keep debug-build test suites usable.
        let p = ReferenceAttentionProblem(qHeads: 8, kvHeads: 2, qLen: 128, kvLen: 128, qkDim: 64, causal: true)
        let q = gen(p.qCount, seed: 0.1, amp: 1), k = gen(p.kCount, seed: 0.2, amp: 1)
        let v = gen(p.vCount, seed: 0.3, amp: 1)
        let t0 = Date()
        let r = try ReferenceAttention.softmax(p, q: q, k: k, v: v)
        let dt = Date().timeIntervalSince(t0)
        XCTAssertTrue(r.o.allSatisfy { $0.isFinite && abs($0) <= 1 + 1e-12 })
        XCTAssertTrue(r.lse.allSatisfy { $0.isFinite })
        print("reference softmax \(p): \(String(format: "%.3f", dt)) s")
    }
}
