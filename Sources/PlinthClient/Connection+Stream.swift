// Connection+Stream: calls whose answer is streamed (several frames with
// `more` set, then a last one), such as GetHistoricalFeatures and
// Materialize. Each frame is handed over as it arrives, so a client never
// holds a whole large result.
public import PlinthWire
public import SwiftProtobuf

extension Connection {
    /// Calls `method` and passes each frame of its streamed answer to `each`,
    /// in order, until the last one; an error status ends the stream and is
    /// thrown. Also works for a method that answers with one frame.
    public func callStreaming<Response: SwiftProtobuf.Message>(_ method: String, _ request: some SwiftProtobuf.Message,
                                                               as: Response.Type,
                                                               each: (Response) throws -> Void) throws {
        let id = try send(method, request)
        while true {
            let frame = try receive()
            if frame.id == 0 && frame.code != 0 { throw PlinthError(code: frame.code, message: frame.message) }
            guard frame.id == id else { continue }
            if frame.code != 0 { throw PlinthError(code: frame.code, message: frame.message) }
            let message: Response
            do { message = try Response(serializedBytes: frame.body) } catch {
                throw PlinthError(code: 13, message: "the server's answer is not a valid \(Response.protoMessageName): \(error)")
            }
            try each(message)
            if !frame.more { return }
        }
    }
}
