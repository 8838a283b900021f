// ProtoSource: reads the messages and services of Proto/plinth/v1/*.proto
// as text, enough for tests to hold the hand-written codecs and the method
// table to the wire contract: field names, numbers and types; rpc names,
// request and response types, and streaming.
import Foundation

struct ProtoField: Equatable {
    let name: String
    let number: Int
    /// "string", "uint64", "Column", "map<string, InferParameter>", ...
    let type: String
    let repeated: Bool
}

struct ProtoRPC: Equatable {
    let service: String
    let name: String
    let request: String
    let response: String
    let streaming: Bool
}

struct ProtoSource {
    /// Messages by name (nested ones by their own name too).
    private(set) var messages: [String: [ProtoField]] = [:]
    /// Every rpc, in file order (files sorted by name).
    private(set) var rpcs: [ProtoRPC] = []

    static let directory: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Proto/plinth/v1")

    static func load() throws -> ProtoSource {
        var source = ProtoSource()
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".proto") }.sorted()
        for file in files {
            try source.parse(String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8))
        }
        return source
    }

    private mutating func parse(_ text: String) throws {
        // Comments out, then one token stream of words and punctuation.
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { line -> Substring in
            if let comment = line.range(of: "//") { return line[..<comment.lowerBound] }
            return line
        }
        var tokens: [String] = []
        var word = ""
        for ch in lines.joined(separator: " ") {
            if ch.isLetter || ch.isNumber || ch == "_" || ch == "." || ch == "\"" {
                word.append(ch)
            } else {
                if !word.isEmpty { tokens.append(word); word = "" }
                if !ch.isWhitespace { tokens.append(String(ch)) }
            }
        }
        if !word.isEmpty { tokens.append(word) }

        var i = 0
        // The message names enclosing the current position (nil: a block
        // that is not a message: service, enum, oneof's contents stay in
        // their message).
        var stack: [String?] = []
        var service: String?
        func at(_ k: Int) -> String { k < tokens.count ? tokens[k] : "" }
        while i < tokens.count {
            let t = tokens[i]
            switch t {
            case "message":
                let name = at(i + 1)
                messages[name] = messages[name] ?? []
                stack.append(name)
                i += 3  // message NAME {
            case "enum":
                stack.append(nil)
                i += 3
            case "service":
                service = at(i + 1)
                stack.append(nil)
                i += 3
            case "oneof":
                // Its fields belong to the enclosing message.
                stack.append(stack.last ?? nil)
                i += 3
            case "}":
                if stack.popLast() == nil, service != nil, !stack.contains(where: { $0 != nil }) { service = nil }
                i += 1
            case "rpc":
                // rpc Name ( Req ) returns ( [stream] Resp ) ;
                let name = at(i + 1), request = at(i + 3)
                guard at(i + 5) == "returns" else { throw ProtoParseError("rpc \(name): unexpected '\(at(i + 5))'") }
                var k = i + 7
                let streaming = at(k) == "stream"
                if streaming { k += 1 }
                rpcs.append(ProtoRPC(service: service ?? "?", name: name, request: request, response: at(k), streaming: streaming))
                while at(k) != ";" && k < tokens.count { k += 1 }
                i = k + 1
            case "syntax", "package", "option", "import", "reserved":
                while at(i) != ";" && i < tokens.count { i += 1 }
                i += 1
            default:
                guard let message = stack.last, let name = message else {
                    // An enum value or anything else outside a message: to the next ';' or block.
                    while at(i) != ";" && at(i) != "}" && i < tokens.count { i += 1 }
                    if at(i) == ";" { i += 1 }
                    continue
                }
                // [repeated] TYPE NAME = NUMBER ;  or  map < K , V > NAME = NUMBER ;
                var repeated = false
                var k = i
                if at(k) == "repeated" || at(k) == "optional" { repeated = at(k) == "repeated"; k += 1 }
                var type = at(k)
                if type == "map" {
                    type = "map<\(at(k + 2)), \(at(k + 4))>"
                    k += 6
                } else {
                    k += 1
                }
                let fieldName = at(k)
                guard at(k + 1) == "=", let number = Int(at(k + 2)) else {
                    throw ProtoParseError("message \(name): cannot read a field at '\(tokens[i..<min(tokens.count, i + 6)].joined(separator: " "))'")
                }
                messages[name, default: []].append(ProtoField(name: fieldName, number: number, type: type, repeated: repeated))
                k += 3
                while at(k) != ";" && k < tokens.count { k += 1 }
                i = k + 1
            }
        }
    }
}

struct ProtoParseError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// "event_time_us" -> "eventTimeUs", protobuf's JSON name.
func jsonName(_ protoName: String) -> String {
    var out = ""
    var upper = false
    for ch in protoName {
        if ch == "_" { upper = true; continue }
        out.append(upper ? Character(ch.uppercased()) : ch)
        upper = false
    }
    return out
}
