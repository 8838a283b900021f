// RunSearch: MLflow's run filter grammar, `order_by`, and paged search.
//
//   filter     := comparison (AND comparison)*          -- no OR, as MLflow
//   comparison := identifier operator value
//   comparison := identifier operator value | identifier IS [NOT] NULL
//   identifier := [prefix "."] key | `key` | "key"     -- key quoted when it has spaces
//   prefix     := metrics|metric | params|param|parameter|parameters | tags|tag
//               | attributes|attribute|attr|run | datasets|dataset
//               (or any of them in backticks: `metric`.auc, as MLflow's parser)
//   operator   := = | != | <> | < | <= | > | >= | LIKE | ILIKE | IN | NOT IN
//   value      := number | 'string' | "string" | ( 'a', 'b', ... )
//
// Metrics compare numbers; params and tags compare strings (= != LIKE
// ILIKE, IS NULL, IS NOT NULL); attributes are run_id (also IN / NOT IN),
// run_name (alias `run name`), status, artifact_uri, user_id, start_time
// (alias created), end_time; datasets are name, digest, context. A run
// lacking the metric, param or tag compared is not a match (MLflow's rule),
// nor is a RUNNING run compared on end_time (MLflow's NULL). Strings
// compare as bytes (SQLite's BINARY), never by canonical equivalence. A
// filter that does not parse is an INVALID_ARGUMENT that names the
// offending token and its position.
import Foundation
import PlinthStorage

/// What a comparison or an ordering looks at.
public enum SearchField: Sendable, Equatable {
    case metric(String)
    case param(String)
    case tag(String)
    case attribute(RunAttribute)
    case dataset(DatasetAttribute)
}

public enum RunAttribute: String, Sendable, CaseIterable {
    case runId = "run_id"
    case runName = "run_name"
    case status
    case startTime = "start_time"
    case endTime = "end_time"
    case artifactUri = "artifact_uri"
    case userId = "user_id"

    var isNumeric: Bool { self == .startTime || self == .endTime }
}

public enum DatasetAttribute: String, Sendable, CaseIterable {
    case name, digest, context
}

public enum SearchOperator: String, Sendable {
    case eq = "=", ne = "!=", lt = "<", le = "<=", gt = ">", ge = ">="
    case like = "LIKE", ilike = "ILIKE", `in` = "IN", notIn = "NOT IN"
    case isNull = "IS NULL", isNotNull = "IS NOT NULL"
}

public enum SearchValue: Sendable, Equatable {
    case number(Double)
    case string(String)
    case list([String])
    /// The missing value of IS NULL / IS NOT NULL.
    case none
}

/// One `identifier operator value` clause.
public struct Comparison: Sendable, Equatable {
    public var field: SearchField
    public var op: SearchOperator
    public var value: SearchValue
}

/// A parsed filter: comparisons joined by AND. The empty filter matches every run.
public struct RunFilter: Sendable, Equatable {
    public var comparisons: [Comparison]

    /// Parses MLflow's filter grammar.
    /// - Throws: `TrackingError.invalidArgument` naming the offending token and its position.
    public static func parse(_ text: String) throws -> RunFilter {
        var parser = try Parser(text)
        var comparisons: [Comparison] = []
        if parser.atEnd { return RunFilter(comparisons: []) }
        while true {
            comparisons.append(try parser.comparison())
            if parser.atEnd { break }
            let token = parser.peek
            guard case .word(let w) = token.kind, w.uppercased() == "AND" else {
                if case .word(let w) = token.kind, w.uppercased() == "OR" {
                    throw parser.error(at: token, "OR is not supported (MLflow's grammar joins comparisons with AND only)")
                }
                throw parser.error(at: token, "expected AND or the end of the filter")
            }
            parser.advance()
            if parser.atEnd { throw parser.error(at: parser.peek, "expected a comparison after AND") }
        }
        return RunFilter(comparisons: comparisons)
    }

    public func matches(_ record: RunRecord) -> Bool {
        matches(record.run) { record.metrics[$0]?.value }
    }

    /// Matches a run whose metrics are looked up one by one (a search reads
    /// only the metrics its filter names, and only for runs that get that far).
    func matches(_ run: Run, metric: (String) throws -> Double?) rethrows -> Bool {
        for comparison in comparisons where !(try comparison.matches(run, metric: metric)) { return false }
        return true
    }
}

extension Comparison {
    func matches(_ run: Run, metric: (String) throws -> Double?) rethrows -> Bool {
        switch field {
        case .metric(let key):
            guard case .number(let n) = value, let actual = try metric(key) else { return false }
            return compare(actual, n)
        case .param(let key):
            return matchOptional(run.params[key])
        case .tag(let key):
            return matchOptional(run.tags[key])
        case .attribute(let attribute):
            switch attribute {
            case .runId: return matchString(run.id)
            // The name and the mlflow.runName tag are kept equal; MLflow
            // filters run_name on the tag, which is the same value here.
            case .runName: return matchString(run.name)
            case .status: return matchString(run.status.rawValue)
            case .artifactUri: return matchString(run.artifactUri)
            case .userId: return matchString(run.user)
            case .startTime:
                guard case .number(let n) = value else { return false }
                return compare(Double(run.startMs), n)
            case .endTime:
                guard case .number(let n) = value, let end = run.endTime else { return false }
                return compare(Double(end), n)
            }
        case .dataset(let attribute):
            let values = run.inputs.map { d -> String in
                switch attribute {
                case .name: d.name
                case .digest: d.digest
                case .context: d.context
                }
            }
            // Every operator means "some dataset of the run matches", != and
            // NOT IN included: MLflow joins the run to its datasets that pass
            // the comparison, so `name != 'a'` keeps a run with datasets a
            // and b, and drops a run without datasets.
            return values.contains { matchString($0) }
        }
    }

    private func compare(_ actual: Double, _ expected: Double) -> Bool {
        switch op {
        case .eq: actual == expected
        case .ne: actual != expected
        case .lt: actual < expected
        case .le: actual <= expected
        case .gt: actual > expected
        case .ge: actual >= expected
        case .like, .ilike, .in, .notIn, .isNull, .isNotNull: false
        }
    }

    /// A param or tag: IS [NOT] NULL looks at presence; anything else needs the value.
    private func matchOptional(_ actual: String?) -> Bool {
        switch op {
        case .isNull: return actual == nil
        case .isNotNull: return actual != nil
        default: return actual.map { matchString($0) } ?? false
        }
    }

    /// Strings compare as bytes, as SQLite's BINARY collation (MLflow's
    /// store): Swift's `==` would call "é" and "e" + combining accent equal.
    private func matchString(_ actual: String) -> Bool {
        switch (op, value) {
        case (.eq, .string(let s)): sameBytes(actual, s)
        case (.ne, .string(let s)): !sameBytes(actual, s)
        case (.like, .string(let s)): likeMatch(Array(actual.unicodeScalars), Array(s.unicodeScalars))
        case (.ilike, .string(let s)):
            likeMatch(Array(actual.lowercased().unicodeScalars), Array(s.lowercased().unicodeScalars))
        case (.in, .list(let l)): l.contains { sameBytes($0, actual) }
        case (.notIn, .list(let l)): !l.contains { sameBytes($0, actual) }
        default: false
        }
    }
}

/// SQL LIKE: `%` matches any run of characters, `_` exactly one.
func likeMatch(_ text: [Unicode.Scalar], _ pattern: [Unicode.Scalar]) -> Bool {
    var t = 0, p = 0
    var starP = -1, starT = 0
    while t < text.count {
        if p < pattern.count && (pattern[p] == "_" || (pattern[p] != "%" && pattern[p] == text[t])) {
            t += 1; p += 1
        } else if p < pattern.count && pattern[p] == "%" {
            starP = p; starT = t; p += 1
        } else if starP >= 0 {
            p = starP + 1; starT += 1; t = starT
        } else {
            return false
        }
    }
    while p < pattern.count && pattern[p] == "%" { p += 1 }
    return p == pattern.count
}

/// One `order_by` entry: a field and a direction. Runs without the field sort last.
public struct RunOrder: Sendable, Equatable {
    public var field: SearchField
    public var ascending: Bool

    /// Parses `metrics.rmse DESC`, `params.model`, `attributes.start_time ASC`.
    public static func parse(_ text: String) throws -> RunOrder {
        var parser = try Parser(text)
        let (field, _) = try parser.identifier()
        var ascending = true
        if !parser.atEnd {
            let token = parser.peek
            guard case .word(let w) = token.kind, ["ASC", "DESC"].contains(w.uppercased()) else {
                throw parser.error(at: token, "expected ASC or DESC")
            }
            ascending = w.uppercased() == "ASC"
            parser.advance()
        }
        if !parser.atEnd { throw parser.error(at: parser.peek, "expected the end of the order_by entry") }
        if case .dataset = field { throw TrackingError.invalidArgument("order_by '\(text)': runs cannot be ordered by dataset fields") }
        return RunOrder(field: field, ascending: ascending)
    }

    /// The sort key of a run: a number or a string, nil when the run lacks it.
    func key(_ record: RunRecord) -> SortKey? {
        switch field {
        case .metric(let k): record.metrics[k].map { .number($0.value) }
        case .param(let k): record.run.params[k].map { .string($0) }
        case .tag(let k): record.run.tags[k].map { .string($0) }
        case .attribute(let a):
            switch a {
            case .runId: .string(record.run.id)
            case .runName: .string(record.run.name)
            case .status: .string(record.run.status.rawValue)
            case .artifactUri: .string(record.run.artifactUri)
            case .userId: .string(record.run.user)
            case .startTime: .number(Double(record.run.startMs))
            case .endTime: record.run.endTime.map { .number(Double($0)) }
            }
        case .dataset: nil
        }
    }
}

enum SortKey {
    case number(Double)
    case string(String)

    /// Where a run sorts whatever the direction, before its value is looked
    /// at: values (±infinity included), then NaN, then runs without the
    /// field. MLflow's ORDER BY puts `CASE is_nan THEN 1 WHEN NULL THEN 2
    /// ELSE 0` ascending before the value, so this holds for ASC and DESC.
    static func group(_ key: SortKey?) -> Int {
        switch key {
        case nil: 2
        case .number(let n)? where n.isNaN: 1
        default: 0
        }
    }

    /// -1, 0, 1 between two keys of one group; strings by UTF-8 bytes (SQLite's BINARY).
    func compare(_ other: SortKey) -> Int {
        switch (self, other) {
        case (.number(let a), .number(let b)): a < b ? -1 : (a > b ? 1 : 0)
        case (.string(let a), .string(let b)): compareBytes(a, b)
        case (.number, .string): -1
        case (.string, .number): 1
        }
    }
}

/// Which runs a search sees, by lifecycle.
public enum RunView: Sendable {
    case activeOnly, deletedOnly, all
}

extension TrackingStore {
    /// Searches the runs of some experiments, MLflow style.
    ///
    /// - Parameters:
    ///   - filter: MLflow's filter grammar (see the top of RunSearch.swift).
    ///   - orderBy: entries such as `metrics.auc DESC`; ties and the default
    ///     order are start time descending, then run id.
    ///   - maxResults: 1...50,000; 0 means the default, 1,000.
    ///   - pageToken: the `nextPageToken` of the previous page.
    public func searchRuns(experimentIds: [UInt64], filter: String = "", orderBy: [String] = [],
                           maxResults: Int = 0, pageToken: String = "", view: RunView = .activeOnly) throws -> Page<RunRecord> {
        let parsed = try RunFilter.parse(filter)
        let orders = try orderBy.map { try RunOrder.parse($0) }
        // MLflow refuses a field ordered twice (created and start_time are one field).
        for (n, o) in orders.enumerated() where orders[..<n].contains(where: { $0.field == o.field }) {
            throw TrackingError.invalidArgument("order_by names \(orderBy[n]) twice; order by each field once")
        }
        let limit = maxResults == 0 ? TrackingLimits.defaultSearchResults : maxResults
        guard (1...TrackingLimits.maxSearchResults).contains(limit) else {
            throw TrackingError.invalidArgument("max_results must be between 1 and \(TrackingLimits.maxSearchResults), not \(maxResults)")
        }
        var offset = 0
        if !pageToken.isEmpty {
            guard let data = Data(base64Encoded: pageToken), let text = String(data: data, encoding: .utf8),
                  text.hasPrefix("offset:"), let n = Int(text.dropFirst(7)), n >= 0 else {
                throw TrackingError.invalidArgument("page token '\(pageToken)' is not one this server issued")
            }
            offset = n
        }
        // The experiment's runs come from the search cache while no write has
        // changed them (a search reads every run of an experiment); sorting
        // moves indices, not records.
        let generations = experimentIds.map { searchCache.generation($0) }
        let matched: [RunRecord] = try environment.read { txn in
            var out: [RunRecord] = []
            for (experimentId, generation) in zip(experimentIds, generations) {
                guard try txn.get(experiments, makeKey { $0.append(experimentId) }) != nil else {
                    throw TrackingError.notFound("no experiment has id \(experimentId)")
                }
                var records = searchCache.records(experimentId, generation: generation)
                if records == nil {
                    records = try runIds(experimentId: experimentId, txn).compactMap { try readRecord($0, txn) }
                    searchCache.store(experimentId, generation: generation, records!)
                }
                for record in records! {
                    switch view {
                    case .activeOnly where record.run.lifecycle != .active: continue
                    case .deletedOnly where record.run.lifecycle != .deleted: continue
                    default: break
                    }
                    if parsed.matches(record) { out.append(record) }
                }
            }
            return out
        }
        let keys = matched.map { record in orders.map { $0.key(record) } }
        let order = matched.indices.sorted { i, j in
            for (n, o) in orders.enumerated() {
                let gi = SortKey.group(keys[i][n]), gj = SortKey.group(keys[j][n])
                if gi != gj { return gi < gj }
                if let x = keys[i][n], let y = keys[j][n] {
                    let c = x.compare(y)
                    if c != 0 { return o.ascending ? c < 0 : c > 0 }
                }
            }
            let a = matched[i].run, b = matched[j].run
            if a.startMs != b.startMs { return a.startMs > b.startMs }
            return compareBytes(a.id, b.id) < 0
        }
        let page = order.dropFirst(offset).prefix(limit).map { matched[$0] }
        let next = offset + page.count < matched.count ? Data("offset:\(offset + page.count)".utf8).base64EncodedString() : ""
        return Page(items: page, nextPageToken: next)
    }
}

// MARK: Tokenizer and parser

private struct Token {
    enum Kind: Equatable {
        case word(String)
        case quoted(String)
        case backticked(String)
        case number(Double)
        case op(String)
        case lparen, rparen, comma, dot, end
    }
    var kind: Kind
    /// Offset of the first character, counting from 0.
    var position: Int
    var text: String
}

private struct Parser {
    let source: String
    var tokens: [Token]
    var index = 0

    init(_ text: String) throws {
        source = text
        tokens = try Self.tokenize(text)
    }

    var peek: Token { tokens[index] }
    var atEnd: Bool { tokens[index].kind == .end }
    mutating func advance() { if index < tokens.count - 1 { index += 1 } }

    func error(at token: Token, _ what: String) -> TrackingError {
        let shown = token.kind == .end ? "the end" : "'\(token.text)'"
        return TrackingError.invalidArgument("invalid filter at position \(token.position + 1) (\(shown)): \(what)\n  \(source)\n  \(String(repeating: " ", count: token.position))^")
    }

    static func tokenize(_ text: String) throws -> [Token] {
        // Unicode scalars, not Characters: a quote followed by a combining
        // mark is one Character, and the value inside must keep its bytes.
        let chars = Array(text.unicodeScalars)
        func string(_ scalars: ArraySlice<Unicode.Scalar>) -> String { String(String.UnicodeScalarView(scalars)) }
        func isDigit(_ c: Unicode.Scalar) -> Bool { c.value >= 0x30 && c.value <= 0x39 }
        func isLetter(_ c: Unicode.Scalar) -> Bool { c.properties.isAlphabetic }
        var out: [Token] = []
        var i = 0
        func fail(_ at: Int, _ what: String) -> TrackingError {
            TrackingError.invalidArgument("invalid filter at position \(at + 1): \(what)\n  \(text)\n  \(String(repeating: " ", count: at))^")
        }
        func isWordChar(_ c: Unicode.Scalar) -> Bool {
            isLetter(c) || isDigit(c) || c.properties.generalCategory == .nonspacingMark
                || c == "_" || c == "." || c == "-" || c == ":" || c == "/"
        }
        while i < chars.count {
            let c = chars[i]
            let start = i
            if c.properties.isWhitespace { i += 1; continue }
            if c == "'" || c == "\"" || c == "`" {
                var value = ""
                i += 1
                var closed = false
                while i < chars.count {
                    if chars[i] == c {
                        // A doubled quote inside a string is one quote, as in SQL.
                        if i + 1 < chars.count && chars[i + 1] == c && c != "`" { value.unicodeScalars.append(c); i += 2; continue }
                        closed = true
                        i += 1
                        break
                    }
                    value.unicodeScalars.append(chars[i])
                    i += 1
                }
                guard closed else { throw fail(start, "the \(c == "`" ? "backtick" : "quote") opened here is never closed") }
                out.append(Token(kind: c == "`" ? .backticked(value) : .quoted(value), position: start, text: string(chars[start..<i])))
                continue
            }
            if isDigit(c) || ((c == "-" || c == "+" || c == ".") && i + 1 < chars.count && (isDigit(chars[i + 1]) || chars[i + 1] == ".")) {
                i += 1
                while i < chars.count, isDigit(chars[i]) || chars[i] == "." || chars[i] == "e" || chars[i] == "E"
                        || ((chars[i] == "-" || chars[i] == "+") && (chars[i - 1] == "e" || chars[i - 1] == "E")) { i += 1 }
                let text = string(chars[start..<i])
                guard let n = Double(text) else { throw fail(start, "'\(text)' is not a number") }
                out.append(Token(kind: .number(n), position: start, text: text))
                continue
            }
            if isLetter(c) || c == "_" {
                while i < chars.count, isWordChar(chars[i]) { i += 1 }
                let word = string(chars[start..<i])
                out.append(Token(kind: .word(word), position: start, text: word))
                continue
            }
            switch c {
            case "(": out.append(Token(kind: .lparen, position: i, text: "(")); i += 1
            case ")": out.append(Token(kind: .rparen, position: i, text: ")")); i += 1
            case ",": out.append(Token(kind: .comma, position: i, text: ",")); i += 1
            // Only after a backticked prefix: `metric`.auc
            case ".": out.append(Token(kind: .dot, position: i, text: ".")); i += 1
            case "=": out.append(Token(kind: .op("="), position: i, text: "=")); i += 1
            case "!", "<", ">":
                if i + 1 < chars.count, chars[i + 1] == "=" || (c == "<" && chars[i + 1] == ">") {
                    let op = string(chars[i...i + 1])
                    out.append(Token(kind: .op(op == "<>" ? "!=" : op), position: i, text: op)); i += 2
                } else if c == "!" {
                    throw fail(i, "'!' must be followed by '=' (write != for not equal)")
                } else {
                    out.append(Token(kind: .op(String(Character(c))), position: i, text: String(Character(c)))); i += 1
                }
            default:
                throw fail(i, "unexpected character '\(Character(c))'")
            }
        }
        out.append(Token(kind: .end, position: chars.count, text: ""))
        return out
    }

    /// An identifier; also returns the token it started at, for errors.
    mutating func identifier() throws -> (SearchField, Token) {
        let first = peek
        var prefix: String?
        var key: String
        switch first.kind {
        case .word(let w):
            advance()
            if let dot = w.firstIndex(of: ".") {
                prefix = String(w[..<dot])
                key = String(w[w.index(after: dot)...])
                if key.isEmpty {
                    // `metrics.` followed by a quoted or backticked key.
                    switch peek.kind {
                    case .quoted(let k), .backticked(let k): key = k; advance()
                    default: throw error(at: peek, "expected a key after '\(w)'")
                    }
                }
            } else {
                key = w
            }
        case .backticked(let k), .quoted(let k):
            advance()
            key = k
            // `metric`.auc: MLflow strips backticks from a prefix (not quotes).
            if case .backticked = first.kind, peek.kind == .dot, peek.position == first.position + first.text.unicodeScalars.count {
                advance()
                prefix = k
                switch peek.kind {
                case .word(let w), .quoted(let w), .backticked(let w): key = w; advance()
                default: throw error(at: peek, "expected a key after '\(first.text).'")
                }
            }
        default:
            throw error(at: first, "expected an identifier such as metrics.auc, params.model, tags.team or attributes.status")
        }
        guard !key.isEmpty else { throw error(at: first, "the key is empty") }
        switch prefix?.lowercased() {
        case "metrics", "metric": return (.metric(key), first)
        case "params", "param", "parameter", "parameters": return (.param(key), first)
        case "tags", "tag": return (.tag(key), first)
        case "datasets", "dataset":
            guard let a = DatasetAttribute(rawValue: key.lowercased()) else {
                throw error(at: first, "datasets have name, digest and context, not '\(key)'")
            }
            return (.dataset(a), first)
        case nil, "attributes", "attribute", "attr", "run":
            let normal = key.lowercased().replacingOccurrences(of: " ", with: "_")
            let aliases: [String: RunAttribute] = ["created": .startTime, "run_uuid": .runId, "name": .runName]
            guard let a = RunAttribute(rawValue: normal) ?? aliases[normal] else {
                if prefix == nil {
                    throw error(at: first, "unknown identifier '\(key)': use a prefix (metrics., params., tags., attributes., datasets.)")
                }
                throw error(at: first, "unknown attribute '\(key)' (run_id, run_name, status, artifact_uri, user_id, start_time, end_time)")
            }
            return (.attribute(a), first)
        case let other?:
            throw error(at: first, "unknown prefix '\(other)' (metrics, params, tags, attributes, datasets)")
        }
    }

    mutating func comparison() throws -> Comparison {
        let (field, _) = try identifier()
        let opToken = peek
        if case .word(let w) = opToken.kind, w.uppercased() == "IS" {
            return try nullTest(field, opToken)
        }
        var op: SearchOperator
        switch opToken.kind {
        case .op(let o):
            guard let parsed = SearchOperator(rawValue: o) else { throw error(at: opToken, "unknown operator") }
            op = parsed
            advance()
        case .word(let w):
            switch w.uppercased() {
            case "LIKE": op = .like
            case "ILIKE": op = .ilike
            case "IN": op = .in
            case "NOT":
                advance()
                guard case .word(let next) = peek.kind, next.uppercased() == "IN" else {
                    throw error(at: peek, "expected IN after NOT")
                }
                op = .notIn
            default: throw error(at: opToken, "expected a comparison operator (= != < <= > >= LIKE ILIKE IN NOT IN IS)")
            }
            advance()
        default:
            throw error(at: opToken, "expected a comparison operator (= != < <= > >= LIKE ILIKE IN NOT IN IS)")
        }
        let valueToken = peek
        let value: SearchValue
        switch valueToken.kind {
        case .number(let n): value = .number(n); advance()
        case .quoted(let s): value = .string(s); advance()
        case .lparen:
            advance()
            var items: [String] = []
            while true {
                guard case .quoted(let s) = peek.kind else { throw error(at: peek, "expected a quoted string in the list") }
                items.append(s)
                advance()
                if peek.kind == .comma { advance(); continue }
                guard peek.kind == .rparen else { throw error(at: peek, "expected ',' or ')'") }
                advance()
                break
            }
            value = .list(items)
        default:
            throw error(at: valueToken, "expected a value: a number, a 'quoted string' or a ('list', 'of', 'strings')")
        }
        try check(field, op, value, opToken: opToken, valueToken: valueToken)
        return Comparison(field: field, op: op, value: value)
    }

    /// `IS NULL` / `IS NOT NULL`, which MLflow allows on params and tags only.
    mutating func nullTest(_ field: SearchField, _ opToken: Token) throws -> Comparison {
        advance()
        var op = SearchOperator.isNull
        if case .word(let w) = peek.kind, w.uppercased() == "NOT" {
            op = .isNotNull
            advance()
        }
        guard case .word(let w) = peek.kind, w.uppercased() == "NULL" else { throw error(at: peek, "expected NULL") }
        advance()
        switch field {
        case .param, .tag: return Comparison(field: field, op: op, value: .none)
        default: throw error(at: opToken, "IS NULL and IS NOT NULL apply to params and tags only (as MLflow's)")
        }
    }

    /// Refuses operators and values that do not fit the field (MLflow's rules).
    func check(_ field: SearchField, _ op: SearchOperator, _ value: SearchValue, opToken: Token, valueToken: Token) throws {
        let numericOps: Set<SearchOperator> = [.eq, .ne, .lt, .le, .gt, .ge]
        let stringOps: Set<SearchOperator> = [.eq, .ne, .like, .ilike]
        switch field {
        case .metric, .attribute(.startTime), .attribute(.endTime):
            guard numericOps.contains(op) else { throw error(at: opToken, "numeric fields compare with = != < <= > >=") }
            guard case .number = value else { throw error(at: valueToken, "expected a number") }
        case .param, .tag, .attribute:
            let allowed = field == .attribute(.runId) ? stringOps.union([.in, .notIn]) : stringOps
            guard allowed.contains(op) else {
                throw error(at: opToken, field == .attribute(.runId) ? "run_id compares with = != LIKE ILIKE IN NOT IN"
                                                                      : "string fields compare with = != LIKE ILIKE")
            }
            if op == .in || op == .notIn {
                guard case .list = value else { throw error(at: valueToken, "IN needs a ('list', 'of', 'strings')") }
            } else {
                guard case .string = value else { throw error(at: valueToken, "expected a 'quoted string'") }
            }
        case .dataset:
            guard stringOps.union([.in, .notIn]).contains(op) else {
                throw error(at: opToken, "dataset fields compare with = != LIKE ILIKE IN NOT IN")
            }
            if op == .in || op == .notIn {
                guard case .list = value else { throw error(at: valueToken, "IN needs a ('list', 'of', 'strings')") }
            } else {
                guard case .string = value else { throw error(at: valueToken, "expected a 'quoted string'") }
            }
        }
    }
}
