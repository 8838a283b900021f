// Expression: the row-level transform language of feature definitions
// (`expr:` in YAML) — parsed once when definitions are applied, type-checked
// against the view's features, and evaluated per row by the transform
// engine on both the online (push) and offline (backfill) paths.
//
// Grammar (lowest precedence first):
//   or      := and ('or' and)*
//   and     := not ('and' not)*
//   not     := 'not' not | compare
//   compare := sum [('<'|'<='|'>'|'>='|'=='|'!=') sum | ['not'] 'in' '(' literal, ... ')']
//   sum     := product (('+'|'-') product)*
//   product := unary (('*'|'/'|'%') unary)*
//   unary   := '-' unary | primary
//   primary := number | 'string' | true | false | null | name | name '(' args ')' | '(' or ')'
// Functions: log exp sqrt abs min max clip(x, lo, hi) coalesce(...) if(c, a, b)
// and date parts year month day hour minute day_of_week (1 = Monday) of a
// time in microseconds (`event_time` is the row's) in a named zone:
// hour(event_time, 'Europe/Berlin'); the zone defaults to UTC.
//
// Nulls propagate (an operation with a null operand is null) except in
// coalesce, if (a null condition picks the else branch) and 'and'/'or'
// (false and null = false, true or null = true). Integer division by zero
// is null; integers wrap on overflow; `/` always gives float64.
import Foundation

/// The value types expressions compute with.
public enum ExprType: Sendable, Equatable, CustomStringConvertible {
    case int, double, bool, string, null

    public var description: String {
        switch self {
        case .int: "int64"
        case .double: "float64"
        case .bool: "bool"
        case .string: "string"
        case .null: "null"
        }
    }

    var isNumber: Bool { self == .int || self == .double || self == .null }

    /// The expression type of a stored feature, or nil (bytes, vectors).
    init?(_ type: FeatureType) {
        switch type {
        case .int64: self = .int
        case .float32, .float64: self = .double
        case .bool: self = .bool
        case .string: self = .string
        case .bytes, .float32Vector: return nil
        }
    }
}

/// One value during evaluation.
public enum Value: Sendable, Equatable {
    case null
    case int(Int64)
    case double(Double)
    case bool(Bool)
    case string(String)

    var asDouble: Double? {
        switch self {
        case .int(let i): Double(i)
        case .double(let d): d
        default: nil
        }
    }
}

/// A parse or type error in an expression, with the expression and where.
public struct ExpressionError: Error, CustomStringConvertible, Sendable, Equatable {
    public let message: String
    public var description: String { message }
}

/// A parsed, type-checked expression.
public indirect enum Expr: Sendable, Equatable {
    case literal(Value)
    /// A feature of the row (index into the evaluation row), or event_time.
    case column(Int, String)
    case eventTime
    case unary(String, Expr)
    case binary(String, Expr, Expr)
    case call(String, [Expr])
    case member(Expr, [Value], negated: Bool)
}

/// Parses expressions against the names a row offers.
public struct ExpressionParser {
    private var tokens: [Token] = []
    private var at = 0
    private let text: String
    /// Name -> (row index, type) of what the expression may read.
    private let names: [String: (Int, ExprType)]

    enum Token: Equatable {
        case number(Value), string(String), name(String), symbol(String), end
    }

    /// Parses and type-checks `text`; returns the expression and its type.
    public static func compile(_ text: String, names: [String: (Int, ExprType)]) throws(ExpressionError) -> (Expr, ExprType) {
        var parser = ExpressionParser(text: text, names: names)
        parser.tokens = try tokenize(text)
        let expr = try parser.or()
        guard parser.tokens[parser.at] == .end else { throw parser.error("unexpected \(parser.describe(parser.tokens[parser.at]))") }
        return (expr, try parser.check(expr))
    }

    private init(text: String, names: [String: (Int, ExprType)]) {
        self.text = text
        self.names = names
    }

    private func error(_ message: String) -> ExpressionError {
        ExpressionError(message: "in expression '\(text)': \(message)")
    }

    private func describe(_ token: Token) -> String {
        switch token {
        case .number(let v): "number \(v)"
        case .string(let s): "string '\(s)'"
        case .name(let n): "'\(n)'"
        case .symbol(let s): "'\(s)'"
        case .end: "end of expression"
        }
    }

    static func tokenize(_ text: String) throws(ExpressionError) -> [Token] {
        var out: [Token] = []
        let chars = Array(text)
        var i = 0
        func fail(_ m: String) -> ExpressionError { ExpressionError(message: "in expression '\(text)': \(m)") }
        while i < chars.count {
            let c = chars[i]
            if c.isWhitespace { i += 1; continue }
            if c.isNumber || (c == "." && i + 1 < chars.count && chars[i + 1].isNumber) {
                var j = i
                var isDouble = false
                while j < chars.count, chars[j].isNumber || chars[j] == "." || chars[j] == "e" || chars[j] == "E"
                        || ((chars[j] == "-" || chars[j] == "+") && (chars[j - 1] == "e" || chars[j - 1] == "E")) {
                    if !chars[j].isNumber { isDouble = true }
                    j += 1
                }
                let literal = String(chars[i..<j])
                if !isDouble, let n = Int64(literal) { out.append(.number(.int(n))) }
                else if let d = Double(literal) { out.append(.number(.double(d))) }
                else { throw fail("'\(literal)' is not a number") }
                i = j
            } else if c.isLetter || c == "_" {
                var j = i
                while j < chars.count, chars[j].isLetter || chars[j].isNumber || chars[j] == "_" { j += 1 }
                out.append(.name(String(chars[i..<j])))
                i = j
            } else if c == "'" || c == "\"" {
                var j = i + 1
                var s = ""
                while j < chars.count && chars[j] != c { s.append(chars[j]); j += 1 }
                guard j < chars.count else { throw fail("a string is not closed") }
                out.append(.string(s))
                i = j + 1
            } else {
                let two = i + 1 < chars.count ? String(chars[i...(i + 1)]) : ""
                if ["<=", ">=", "==", "!="].contains(two) { out.append(.symbol(two)); i += 2; continue }
                guard "+-*/%<>(),".contains(c) else { throw fail("unexpected character '\(c)'") }
                out.append(.symbol(String(c)))
                i += 1
            }
        }
        out.append(.end)
        return out
    }

    private mutating func take(_ symbol: String) -> Bool {
        if tokens[at] == .symbol(symbol) || tokens[at] == .name(symbol) { at += 1; return true }
        return false
    }

    private mutating func expect(_ symbol: String) throws(ExpressionError) {
        guard take(symbol) else { throw error("expected '\(symbol)' but found \(describe(tokens[at]))") }
    }

    private mutating func or() throws(ExpressionError) -> Expr {
        var left = try and()
        while take("or") { left = .binary("or", left, try and()) }
        return left
    }

    private mutating func and() throws(ExpressionError) -> Expr {
        var left = try not()
        while take("and") { left = .binary("and", left, try not()) }
        return left
    }

    private mutating func not() throws(ExpressionError) -> Expr {
        if take("not") { return .unary("not", try not()) }
        return try compare()
    }

    private mutating func compare() throws(ExpressionError) -> Expr {
        let left = try sum()
        for op in ["<=", ">=", "==", "!=", "<", ">"] where take(op) { return .binary(op, left, try sum()) }
        var negated = false
        if tokens[at] == .name("not"), tokens[at + 1] == .name("in") { at += 1; negated = true }
        if take("in") {
            try expect("(")
            var set: [Value] = []
            repeat {
                switch tokens[at] {
                case .number(let v): set.append(v)
                case .string(let s): set.append(.string(s))
                case .symbol("-"):
                    at += 1
                    guard case .number(let v) = tokens[at] else { throw error("'in' takes a list of literals") }
                    switch v {
                    case .int(let i): set.append(.int(0 &- i))
                    case .double(let d): set.append(.double(-d))
                    default: break
                    }
                default: throw error("'in' takes a list of literals, not \(describe(tokens[at]))")
                }
                at += 1
            } while take(",")
            try expect(")")
            return .member(left, set, negated: negated)
        }
        return left
    }

    private mutating func sum() throws(ExpressionError) -> Expr {
        var left = try product()
        while true {
            if take("+") { left = .binary("+", left, try product()) }
            else if take("-") { left = .binary("-", left, try product()) }
            else { return left }
        }
    }

    private mutating func product() throws(ExpressionError) -> Expr {
        var left = try unary()
        while true {
            if take("*") { left = .binary("*", left, try unary()) }
            else if take("/") { left = .binary("/", left, try unary()) }
            else if take("%") { left = .binary("%", left, try unary()) }
            else { return left }
        }
    }

    private mutating func unary() throws(ExpressionError) -> Expr {
        if take("-") { return .unary("-", try unary()) }
        return try primary()
    }

    static let functions: Set<String> = ["log", "exp", "sqrt", "abs", "min", "max", "clip", "coalesce", "if",
                                         "year", "month", "day", "hour", "minute", "day_of_week"]

    private mutating func primary() throws(ExpressionError) -> Expr {
        let token = tokens[at]
        at += 1
        switch token {
        case .number(let v): return .literal(v)
        case .string(let s): return .literal(.string(s))
        case .symbol("("):
            let inner = try or()
            try expect(")")
            return inner
        case .name("true"): return .literal(.bool(true))
        case .name("false"): return .literal(.bool(false))
        case .name("null"): return .literal(.null)
        case .name(let name):
            if take("(") {
                guard Self.functions.contains(name) else {
                    throw error("unknown function '\(name)' (known: \(Self.functions.sorted().joined(separator: ", ")))")
                }
                var args: [Expr] = []
                if !take(")") {
                    repeat { args.append(try or()) } while take(",")
                    try expect(")")
                }
                return .call(name, args)
            }
            if name == "event_time" { return .eventTime }
            guard let (index, _) = names[name] else {
                throw error("unknown name '\(name)' (the view's features so far: \(names.keys.sorted().joined(separator: ", ")); and event_time)")
            }
            return .column(index, name)
        default:
            throw error("unexpected \(describe(token))")
        }
    }

    // MARK: Types

    private func common(_ a: ExprType, _ b: ExprType, _ what: String) throws(ExpressionError) -> ExprType {
        if a == .null { return b }
        if b == .null || a == b { return a }
        if a.isNumber && b.isNumber { return .double }
        throw error("\(what) mixes \(a) and \(b)")
    }

    private mutating func check(_ expr: Expr) throws(ExpressionError) -> ExprType {
        switch expr {
        case .literal(let v):
            switch v {
            case .null: return .null
            case .int: return .int
            case .double: return .double
            case .bool: return .bool
            case .string: return .string
            }
        case .column(_, let name):
            return names[name]?.1 ?? .null
        case .eventTime:
            return .int
        case .unary(let op, let e):
            let t = try check(e)
            if op == "not" {
                guard t == .bool || t == .null else { throw error("'not' needs a bool, not \(t)") }
                return .bool
            }
            guard t.isNumber else { throw error("'-' needs a number, not \(t)") }
            return t
        case .binary(let op, let l, let r):
            let a = try check(l), b = try check(r)
            switch op {
            case "and", "or":
                guard (a == .bool || a == .null) && (b == .bool || b == .null) else { throw error("'\(op)' needs bools, not \(a) and \(b)") }
                return .bool
            case "+", "-", "*", "%":
                guard a.isNumber && b.isNumber else { throw error("'\(op)' needs numbers, not \(a) and \(b)") }
                return a == .int && b == .int ? .int : .double
            case "/":
                guard a.isNumber && b.isNumber else { throw error("'/' needs numbers, not \(a) and \(b)") }
                return .double
            default:
                _ = try common(a, b, "comparison '\(op)'")
                if a == .bool || b == .bool, op != "==" && op != "!=" { throw error("bools compare only with == and !=") }
                return .bool
            }
        case .member(let e, let set, _):
            let t = try check(e)
            for v in set {
                let vt: ExprType = if case .string = v { .string } else { .double }
                guard (t == .string) == (vt == .string) || t == .null else { throw error("'in' compares \(t) with a list holding \(vt == .string ? "strings" : "numbers")") }
            }
            return .bool
        case .call(let name, let args):
            let types = try args.map { (a) throws(ExpressionError) -> ExprType in try check(a) }
            func arity(_ range: ClosedRange<Int>) throws(ExpressionError) {
                guard range.contains(args.count) else {
                    throw error("\(name)() takes \(range.lowerBound == range.upperBound ? "\(range.lowerBound)" : "\(range.lowerBound) to \(range.upperBound)") argument(s), not \(args.count)")
                }
            }
            switch name {
            case "log", "exp", "sqrt":
                try arity(1...1)
                guard types[0].isNumber else { throw error("\(name)() needs a number, not \(types[0])") }
                return .double
            case "abs":
                try arity(1...1)
                guard types[0].isNumber else { throw error("abs() needs a number, not \(types[0])") }
                return types[0]
            case "min", "max", "clip":
                try arity(name == "clip" ? 3...3 : 2...64)
                for t in types where !t.isNumber { throw error("\(name)() needs numbers, not \(t)") }
                return types.allSatisfy { $0 == .int } ? .int : .double
            case "coalesce":
                try arity(1...64)
                var t = ExprType.null
                for u in types { t = try common(t, u, "coalesce()") }
                return t
            case "if":
                try arity(3...3)
                guard types[0] == .bool || types[0] == .null else { throw error("if() needs a bool condition, not \(types[0])") }
                return try common(types[1], types[2], "if()")
            default:
                try arity(1...2)
                guard types[0] == .int else { throw error("\(name)() needs a time in microseconds (int64, e.g. event_time), not \(types[0])") }
                if args.count == 2 {
                    guard case .literal(.string(let zone)) = args[1] else { throw error("\(name)()'s zone must be a string literal") }
                    guard TimeZone(identifier: zone) != nil else { throw error("unknown time zone '\(zone)'") }
                }
                return .int
            }
        }
    }

}

// MARK: Evaluation

/// Evaluates compiled expressions over one row at a time.
struct Evaluator {
    /// Calendars by zone, made once per engine run (Calendar is costly).
    private var calendars: [String: Calendar] = [:]

    mutating func evaluate(_ expr: Expr, row: [Value], eventTime: Int64) -> Value {
        switch expr {
        case .literal(let v): return v
        case .column(let i, _): return row[i]
        case .eventTime: return .int(eventTime)
        case .unary(let op, let e):
            let v = evaluate(e, row: row, eventTime: eventTime)
            switch (op, v) {
            case ("not", .bool(let b)): return .bool(!b)
            case ("-", .int(let i)): return .int(0 &- i)
            case ("-", .double(let d)): return .double(-d)
            default: return .null
            }
        case .binary(let op, let l, let r):
            let a = evaluate(l, row: row, eventTime: eventTime)
            if op == "and", case .bool(false) = a { return .bool(false) }
            if op == "or", case .bool(true) = a { return .bool(true) }
            let b = evaluate(r, row: row, eventTime: eventTime)
            return Self.binary(op, a, b)
        case .member(let e, let set, let negated):
            let v = evaluate(e, row: row, eventTime: eventTime)
            if v == .null { return .null }
            let found = set.contains { member in
                if case .string = v { return member == v }
                return member.asDouble == v.asDouble
            }
            return .bool(found != negated)
        case .call(let name, let args):
            if name == "coalesce" {
                for a in args { let v = evaluate(a, row: row, eventTime: eventTime); if v != .null { return v } }
                return .null
            }
            if name == "if" {
                if case .bool(true) = evaluate(args[0], row: row, eventTime: eventTime) { return evaluate(args[1], row: row, eventTime: eventTime) }
                return evaluate(args[2], row: row, eventTime: eventTime)
            }
            let values = args.map { evaluate($0, row: row, eventTime: eventTime) }
            if values.contains(.null) { return .null }
            return call(name, values)
        }
    }

    static func binary(_ op: String, _ a: Value, _ b: Value) -> Value {
        switch op {
        case "and", "or":
            // Short-circuit cases were handled by the caller.
            guard case .bool(let x) = a, case .bool(let y) = b else {
                if op == "and", case .bool(false) = b { return .bool(false) }
                if op == "or", case .bool(true) = b { return .bool(true) }
                return .null
            }
            return .bool(op == "and" ? x && y : x || y)
        default: break
        }
        if a == .null || b == .null { return .null }
        if case .int(let x) = a, case .int(let y) = b {
            switch op {
            case "+": return .int(x &+ y)
            case "-": return .int(x &- y)
            case "*": return .int(x &* y)
            case "%": return y == 0 ? .null : .int(x % y)
            case "/": return y == 0 ? .null : .double(Double(x) / Double(y))
            default: return compare(op, x < y ? -1 : (x == y ? 0 : 1))
            }
        }
        if let x = a.asDouble, let y = b.asDouble {
            switch op {
            case "+": return .double(x + y)
            case "-": return .double(x - y)
            case "*": return .double(x * y)
            case "%": return .double(fmod(x, y))
            case "/": return .double(x / y)
            default: return compare(op, x < y ? -1 : (x == y ? 0 : 1))
            }
        }
        if case .string(let x) = a, case .string(let y) = b { return compare(op, x < y ? -1 : (x == y ? 0 : 1)) }
        if case .bool(let x) = a, case .bool(let y) = b { return compare(op, x == y ? 0 : 1) }
        return .null
    }

    private static func compare(_ op: String, _ c: Int) -> Value {
        switch op {
        case "<": .bool(c < 0)
        case "<=": .bool(c <= 0)
        case ">": .bool(c > 0)
        case ">=": .bool(c >= 0)
        case "==": .bool(c == 0)
        case "!=": .bool(c != 0)
        default: .null
        }
    }

    private mutating func call(_ name: String, _ v: [Value]) -> Value {
        switch name {
        case "log": return .double(Foundation.log(v[0].asDouble ?? .nan))
        case "exp": return .double(Foundation.exp(v[0].asDouble ?? .nan))
        case "sqrt": return .double((v[0].asDouble ?? .nan).squareRoot())
        case "abs":
            if case .int(let i) = v[0] { return .int(i == .min ? i : Swift.abs(i)) }
            return .double(Swift.abs(v[0].asDouble ?? .nan))
        case "min", "max":
            var best = v[0]
            for x in v.dropFirst() {
                let less: Bool
                if case .int(let a) = x, case .int(let b) = best { less = a < b } else { less = (x.asDouble ?? .nan) < (best.asDouble ?? .nan) }
                if less == (name == "min") && x != best { best = x }
            }
            return v.allSatisfy({ if case .int = $0 { true } else { false } }) ? best : .double(best.asDouble ?? .nan)
        case "clip":
            let low = call("max", [v[0], v[1]])
            return call("min", [low, v[2]])
        default:
            guard case .int(let micros) = v[0] else { return .null }
            let zone: String
            if v.count > 1, case .string(let z) = v[1] { zone = z } else { zone = "UTC" }
            let calendar = calendarFor(zone)
            let date = Date(timeIntervalSince1970: Double(micros.dividedReportingOverflow(by: 1_000_000).partialValue)
                            + Double(micros % 1_000_000) / 1e6)
            switch name {
            case "year": return .int(Int64(calendar.component(.year, from: date)))
            case "month": return .int(Int64(calendar.component(.month, from: date)))
            case "day": return .int(Int64(calendar.component(.day, from: date)))
            case "hour": return .int(Int64(calendar.component(.hour, from: date)))
            case "minute": return .int(Int64(calendar.component(.minute, from: date)))
            default:
                // Calendar weekday: 1 = Sunday; ISO: 1 = Monday.
                let weekday = calendar.component(.weekday, from: date)
                return .int(Int64((weekday + 5) % 7 + 1))
            }
        }
    }

    private mutating func calendarFor(_ zone: String) -> Calendar {
        if let c = calendars[zone] { return c }
        var c = Calendar(identifier: .gregorian)
        c.timeZone = TimeZone(identifier: zone) ?? TimeZone(secondsFromGMT: 0) ?? c.timeZone
        calendars[zone] = c
        return c
    }
}
