/// Expressions of the supported jinja2 subset. Nodes that can fail at run time carry
/// the template line so the error can name it.
indirect enum JinjaExpr {
    case literal(JinjaValue)
    case name(String, line: Int)
    case list([JinjaExpr])
    case tuple([JinjaExpr])
    case dict([(JinjaExpr, JinjaExpr)])
    case attribute(JinjaExpr, String, line: Int)
    case item(JinjaExpr, JinjaExpr, line: Int)
    case slice(JinjaExpr, start: JinjaExpr?, stop: JinjaExpr?, step: JinjaExpr?, line: Int)
    case call(JinjaExpr, JinjaArgs, line: Int)
    case filter(JinjaExpr, String, JinjaArgs, line: Int)
    case test(JinjaExpr, String, JinjaArgs, negated: Bool, line: Int)
    case not(JinjaExpr)
    case negate(JinjaExpr, line: Int)
    case binary(String, JinjaExpr, JinjaExpr, line: Int)
    case and(JinjaExpr, JinjaExpr)
    case or(JinjaExpr, JinjaExpr)
    /// `a < b <= c` chains as in Python.
    case compare(JinjaExpr, [(String, JinjaExpr)], line: Int)
    case conditional(then: JinjaExpr, condition: JinjaExpr, otherwise: JinjaExpr?)
}

struct JinjaArgs {
    var positional: [JinjaExpr] = []
    var keyword: [(String, JinjaExpr)] = []
}

/// Where `{% set %}` stores: a variable, or an attribute of a namespace.
enum JinjaSetTarget {
    case name(String)
    case names([String])
    case attribute(String, String)
}

indirect enum JinjaStmt {
    case text(String)
    case output(JinjaExpr, line: Int)
    case ifChain([(JinjaExpr, [JinjaStmt])], otherwise: [JinjaStmt])
    case forLoop(targets: [String], iterable: JinjaExpr, filter: JinjaExpr?, body: [JinjaStmt], otherwise: [JinjaStmt], line: Int)
    case set(JinjaSetTarget, JinjaExpr, line: Int)
    case setBlock(String, body: [JinjaStmt])
    case breakLoop
    case continueLoop
}
