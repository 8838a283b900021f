// Connection: a blocking Plinth client over TCP or a Unix socket, for
// plinthctl, plinth-bench and tests. One connection, one thread; requests
// can be pipelined with send/receive (answers matched by id).
public import Foundation
public import PlinthWire
public import SwiftProtobuf
#if canImport(Glibc)
import Glibc
#endif

/// A failed call: the server's status, or a transport problem (UNAVAILABLE).
public struct PlinthError: Error, CustomStringConvertible, Sendable {
    public let code: Int
    public let message: String
    public init(code: Int, message: String) {
        self.code = code
        self.message = message
    }

    public static let codeNames = ["OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
                                   "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
                                   "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
                                   "UNAUTHENTICATED"]
    public var codeName: String { code >= 0 && code < Self.codeNames.count ? Self.codeNames[code] : "CODE_\(code)" }
    public var description: String { "\(codeName): \(message)" }
}

/// One decoded response frame.
public struct ResponseFrame: Sendable {
    public let id: UInt64
    public let code: Int
    public let message: String
    public let body: Data
    public let more: Bool
}

public final class Connection {
    private let fd: Int32
    private var readBuffer: [UInt8] = []
    private var readStart = 0
    private var nextID: UInt64 = 1
    public private(set) var hello = PBHelloResponse()

    /// Connects to "host:port" or "unix:/path" and says Hello.
    public init(address: String, token: String? = nil, clientName: String = "plinth-swift", sayHello: Bool = true) throws {
        fd = try Self.connect(address)
        if sayHello {
            var request = PBHelloRequest()
            request.protocolVersion = PlinthProtocol.version
            request.token = token ?? ""
            request.clientName = clientName
            do {
                hello = try call(Method.hello, request, as: PBHelloResponse.self)
            } catch {
                Glibc.close(fd)
                throw error
            }
        }
    }

    deinit { Glibc.close(fd) }

    private static func connect(_ address: String) throws -> Int32 {
        if address.hasPrefix("unix:") {
            let path = String(address.dropFirst(5))
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw PlinthError(code: 14, message: "socket: \(String(cString: strerror(errno)))") }
            var addr = sockaddr_un()
            addr.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(path.utf8)
            guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else {
                Glibc.close(fd)
                throw PlinthError(code: 3, message: "unix socket path too long: \(path)")
            }
            withUnsafeMutableBytes(of: &addr.sun_path) { raw in
                for (i, b) in bytes.enumerated() { raw[i] = b }
            }
            let rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            guard rc == 0 else {
                let reason = String(cString: strerror(errno))
                Glibc.close(fd)
                throw PlinthError(code: 14, message: "cannot connect to \(address): \(reason)")
            }
            return fd
        }
        guard let colon = address.lastIndex(of: ":"), let port = UInt16(address[address.index(after: colon)...]) else {
            throw PlinthError(code: 3, message: "address '\(address)' is not host:port or unix:/path")
        }
        var host = String(address[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host == "localhost" { host = "127.0.0.1" }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &result) == 0, let info = result else {
            throw PlinthError(code: 14, message: "cannot resolve host '\(host)'")
        }
        defer { freeaddrinfo(result) }
        let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype, info.pointee.ai_protocol)
        guard fd >= 0 else { throw PlinthError(code: 14, message: "socket: \(String(cString: strerror(errno)))") }
        guard Glibc.connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else {
            let reason = String(cString: strerror(errno))
            Glibc.close(fd)
            throw PlinthError(code: 14, message: "cannot connect to \(address): \(reason) (is plinthd running?)")
        }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        return fd
    }

    /// Calls `method` and waits for its answer (one frame; a streamed
    /// answer's frames are merged, as protobuf concatenation does).
    public func call<Response: SwiftProtobuf.Message>(_ method: String, _ request: some SwiftProtobuf.Message,
                                                      as type: Response.Type) throws -> Response {
        var result: Response?
        try callStreaming(method, request, as: type) { part in
            if var merged = result {
                try merged.merge(serializedBytes: part.serializedBytes() as [UInt8])
                result = merged
            } else {
                result = part
            }
        }
        guard let result else { throw PlinthError(code: 13, message: "the server ended \(method) without an answer") }
        return result
    }

    /// Sends a request without waiting; returns its id.
    @discardableResult
    public func send(_ method: String, _ request: some SwiftProtobuf.Message) throws -> UInt64 {
        let body: [UInt8] = try request.serializedBytes()
        return try send(method, body: body)
    }

    /// Sends an encoded request body without waiting; returns its id.
    @discardableResult
    public func send(_ method: String, body: [UInt8]) throws -> UInt64 {
        let id = nextID
        nextID += 1
        var envelope = PBRequest()
        envelope.id = id
        envelope.method = method
        envelope.body = Data(body)
        let bytes: [UInt8] = try envelope.serializedBytes()
        try writeFrame(bytes)
        return id
    }

    /// Writes raw bytes as one frame (length prefix added); for tests of bad input.
    public func writeFrame(_ payload: [UInt8]) throws {
        var frame = [UInt8]()
        frame.reserveCapacity(payload.count + 4)
        let n = UInt32(payload.count)
        frame.append(contentsOf: [UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)])
        frame.append(contentsOf: payload)
        try writeAll(frame)
    }

    /// Writes raw bytes as they are; for tests of bad input.
    public func writeAll(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw PlinthError(code: 14, message: "connection lost while sending: \(String(cString: strerror(errno)))")
            }
            offset += n
        }
    }

    /// Reads the next response frame.
    public func receive() throws -> ResponseFrame {
        let header = try readExactly(4)
        let length = Int(header[0]) << 24 | Int(header[1]) << 16 | Int(header[2]) << 8 | Int(header[3])
        let payload = try readExactly(length)
        let response: PBResponse
        do { response = try PBResponse(serializedBytes: payload) } catch {
            throw PlinthError(code: 13, message: "the server sent a frame that is not a plinth.v1.Response")
        }
        return ResponseFrame(id: response.id, code: Int(response.status.code.rawValue), message: response.status.message,
                             body: response.body, more: response.more)
    }

    private func readExactly(_ count: Int) throws -> [UInt8] {
        while readBuffer.count - readStart < count {
            if readStart > 0 && readStart == readBuffer.count {
                readBuffer.removeAll(keepingCapacity: true)
                readStart = 0
            }
            var chunk = [UInt8](repeating: 0, count: max(65536, count))
            let n = chunk.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { throw PlinthError(code: 14, message: "the server closed the connection") }
            readBuffer.append(contentsOf: chunk[0..<n])
        }
        let out = Array(readBuffer[readStart..<(readStart + count)])
        readStart += count
        if readStart > 1 << 20 {
            readBuffer.removeFirst(readStart)
            readStart = 0
        }
        return out
    }
}
