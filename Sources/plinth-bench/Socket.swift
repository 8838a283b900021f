// Socket: the blocking TCP client socket that every plinth-bench command
// uses, for Plinth and for Redis alike. The comparison is only fair when
// both sides are driven by the same client code (another client alone
// moves a loopback round trip by microseconds), so this one type does the
// syscalls and buffering and
// the protocol codecs only encode and parse bytes.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A connected TCP socket with TCP_NODELAY and a reusable receive buffer.
///
/// Threading: one thread at a time; every call blocks.
final class Socket {
    private let fd: Int32
    /// Received bytes not yet consumed are `buffer[start..<end]`.
    private var buffer: UnsafeMutableRawBufferPointer
    private var start = 0
    private var end = 0

    /// Connects to "host:port" (loopback only: the benchmark must not send
    /// traffic anywhere else).
    init(address: String, receiveBuffer: Int = 1 << 20) throws {
        let port = try Self.loopbackPort(address)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw BenchError("socket: \(String(cString: strerror(errno)))") }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            let reason = String(cString: strerror(errno))
            Glibc.close(fd)
            throw BenchError("cannot connect to \(address): \(reason)")
        }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        self.fd = fd
        buffer = .allocate(byteCount: receiveBuffer, alignment: 16)
    }

    deinit {
        Glibc.close(fd)
        buffer.deallocate()
    }

    /// The port of "127.0.0.1:PORT" (or "localhost:PORT"); any other host is
    /// refused, so the benchmark never sends traffic off the machine.
    static func loopbackPort(_ address: String) throws -> UInt16 {
        guard let colon = address.lastIndex(of: ":"), let port = UInt16(address[address.index(after: colon)...]) else {
            throw BenchError("address '\(address)' is not host:port")
        }
        let host = address[..<colon]
        guard host == "127.0.0.1" || host == "localhost" else {
            throw BenchError("plinth-bench only talks to 127.0.0.1, not '\(host)'")
        }
        return port
    }

    /// Writes all of `bytes`.
    func send(_ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            let n = Glibc.send(fd, bytes.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
            if n < 0 {
                if errno == EINTR { continue }
                throw BenchError("connection lost while sending: \(String(cString: strerror(errno)))")
            }
            offset += n
        }
    }

    func send(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try send($0) }
    }

    /// The received bytes not yet consumed.
    var unread: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: buffer[start..<end])
    }

    /// Marks `count` unread bytes as consumed.
    func consume(_ count: Int) {
        start += count
        if start == end { start = 0; end = 0 }
    }

    /// Blocks until more bytes arrive (at least one), growing the buffer
    /// when a single message is larger than it.
    func receiveMore() throws {
        if end == buffer.count {
            if start > 0 {
                // Move the partial message to the front rather than grow.
                let pending = end - start
                buffer.baseAddress!.copyMemory(from: buffer.baseAddress! + start, byteCount: pending)
                start = 0
                end = pending
            } else {
                let bigger = UnsafeMutableRawBufferPointer.allocate(byteCount: buffer.count * 2, alignment: 16)
                bigger.baseAddress!.copyMemory(from: buffer.baseAddress!, byteCount: end)
                buffer.deallocate()
                buffer = bigger
            }
        }
        while true {
            let n = Glibc.recv(fd, buffer.baseAddress! + end, buffer.count - end, 0)
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw BenchError("receive failed: \(String(cString: strerror(errno)))") }
            if n == 0 { throw BenchError("the server closed the connection") }
            end += n
            return
        }
    }
}

/// Monotonic nanoseconds: the clock every latency is measured with.
@inline(__always)
func nowNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
