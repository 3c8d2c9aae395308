import AttuneText
import XCTest

final class TextErrorTests: XCTestCase {
    func testDescriptionIsTheMessage() {
        XCTAssertEqual("\(TextError("tokenizer.json: unknown model 'WordPiece'"))", "tokenizer.json: unknown model 'WordPiece'")
    }
}
