// The frame decoder, drip-fed and batched by NIO's verifier, and its
// refusal of oversized frames before buffering them.
import Foundation
import NIOCore
import NIOEmbedded
import NIOTestUtils
import XCTest
@testable import PlinthWire

final class FrameDecoderTests: XCTestCase {
    func frame(_ bytes: [UInt8]) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(bytes.count))
        buffer.writeBytes(bytes)
        return buffer
    }

    func testDecodesSplitAndBatchedInput() throws {
        let payloads: [[UInt8]] = [[1, 2, 3], [], Array(repeating: 7, count: 300)]
        try ByteToMessageDecoderVerifier.verifyDecoder(
            inputOutputPairs: payloads.map { (frame($0), [ByteBuffer(bytes: $0)]) },
            decoderFactory: { FrameDecoder(maxFrameBytes: 1024) })
    }

    func testRefusesAnOversizedLengthBeforeTheBodyArrives() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maxFrameBytes: 1024)))
        var header = ByteBuffer()
        header.writeInteger(UInt32(1025))
        XCTAssertThrowsError(try channel.writeInbound(header)) { error in
            XCTAssertEqual((error as? FrameTooLargeError)?.length, 1025)
        }
        _ = try? channel.finish()
    }

    func testTruncatedFrameAtCloseProducesNothing() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maxFrameBytes: 1024)))
        var partial = frame([1, 2, 3, 4])
        partial.moveWriterIndex(to: partial.writerIndex - 2)
        try channel.writeInbound(partial)
        XCTAssertNil(try channel.readInbound(as: ByteBuffer.self))
        // At close the partial frame is dropped, never delivered as a message.
        _ = try channel.finish(acceptAlreadyClosed: true)
        XCTAssertNil(try channel.readInbound(as: ByteBuffer.self))
    }
}

final class EnvelopeTests: XCTestCase {
    func testRequestMatchesGeneratedEncodingAndBodyIsASlice() throws {
        var request = PBRequest()
        request.id = 300
        request.method = Method.getOnlineFeatures
        request.body = Data([9, 8, 7])
        let bytes: [UInt8] = try request.serializedBytes()
        let envelope = try Envelope.decodeRequest(ByteBuffer(bytes: bytes))
        XCTAssertEqual(envelope.id, 300)
        XCTAssertEqual(envelope.method, Method.getOnlineFeatures)
        XCTAssertEqual(Array(envelope.body.readableBytesView), [9, 8, 7])
    }

    func testUnknownFieldsAreSkippedAndGarbageRefused() throws {
        // Field 15 (varint) and field 16 (fixed64) are unknown: skipped.
        let bytes: [UInt8] = [0x08, 0x05, 0x78, 0x01, 0x81, 0x01, 1, 2, 3, 4, 5, 6, 7, 8]
        XCTAssertEqual(try Envelope.decodeRequest(ByteBuffer(bytes: bytes)).id, 5)
        for garbage: [UInt8] in [[0xFF], [0x1A, 0x10, 1], [0x0B], [0x08, 0x80, 0x80]] {
            XCTAssertThrowsError(try Envelope.decodeRequest(ByteBuffer(bytes: garbage)), "\(garbage)")
        }
    }

    func testResponseDecodesWithGeneratedCode() throws {
        for (body, code, message, more) in [([UInt8](), 0, "", false), ([1, 2, 3], 0, "", true), ([], 5, "unknown view 'x'", false),
                                            (Array(repeating: 0xAB, count: 70_000), 0, "", false)] {
            var out = ByteBuffer()
            Envelope.writeResponse(id: 42, code: code, message: message, more: more, into: &out) { $0.writeBytes(body) }
            let length = out.readInteger(as: UInt32.self)
            XCTAssertEqual(Int(length ?? 0), out.readableBytes)
            let response = try PBResponse(serializedBytes: Array(out.readableBytesView))
            XCTAssertEqual(response.id, 42)
            XCTAssertEqual(Array(response.body), body)
            XCTAssertEqual(Int(response.status.code.rawValue), code)
            XCTAssertEqual(response.status.message, message)
            XCTAssertEqual(response.more, more)
        }
    }

    func testResponsesAppendedOneAfterAnotherDecode() throws {
        let answers: [(UInt64, [UInt8])] = [(1, []), (300, [1, 2, 3]), (.max, Array(repeating: 7, count: 20_000))]
        var out = ByteBuffer()
        for (id, body) in answers {
            let started = Envelope.beginResponse(id: id, in: &out)
            out.writeBytes(body)
            Envelope.endResponse(started, in: &out)
        }
        for (id, body) in answers {
            let length = try XCTUnwrap(out.readInteger(as: UInt32.self))
            let frame = try XCTUnwrap(out.readSlice(length: Int(length)))
            let response = try PBResponse(serializedBytes: Array(frame.readableBytesView))
            XCTAssertEqual(response.id, id)
            XCTAssertEqual(Array(response.body), body)
            XCTAssertEqual(response.status.code, .ok)
        }
        XCTAssertEqual(out.readableBytes, 0)
    }

    func testRawRequestMatchesTheStringOne() throws {
        var request = PBRequest()
        request.id = 1 << 40
        request.method = Method.getOnlineFeatures
        request.body = Data([9, 8, 7])
        var bytes: [UInt8] = try request.serializedBytes()
        bytes += [0x78, 0x01, 0x81, 0x01, 1, 2, 3, 4, 5, 6, 7, 8]   // unknown fields 15 and 16
        let raw = try Envelope.decodeRawRequest(ByteBuffer(bytes: bytes))
        XCTAssertEqual(raw.id, 1 << 40)
        XCTAssertEqual(raw.methodName, Method.getOnlineFeatures)
        XCTAssertEqual(Array(raw.body.readableBytesView), [9, 8, 7])
        for garbage: [UInt8] in [[0xFF], [0x1A, 0x10, 1], [0x0B], [0x08, 0x80, 0x80], [0x12, 0x05, 0x61]] {
            XCTAssertThrowsError(try Envelope.decodeRawRequest(ByteBuffer(bytes: garbage)), "\(garbage)")
        }
    }
}
