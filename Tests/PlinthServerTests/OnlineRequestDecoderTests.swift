// The hand-written request parser must read whatever the generated
// encoder (or any conforming protobuf writer) produces, and refuse the rest.
import Foundation
import NIOCore
import PlinthFeatures
import PlinthWire
import XCTest
@testable import PlinthServer

final class OnlineRequestDecoderTests: XCTestCase {
    func testReadsWhatTheGeneratedEncoderWrites() throws {
        var request = PBGetOnlineFeaturesRequest()
        request.features = ["user_stats:txn_count_7d", "user_stats:country", "vüew:f"]
        request.fullFeatureNames = true
        var ids = PBColumn(); ids.name = "user_id"; ids.type = .int64; ids.int64Values = [1, -2, .max]; ids.nullRows = [1]
        var shops = PBColumn(); shops.name = "shop"; shops.type = .string; shops.stringValues = ["a", "", "ç"]
        var blobs = PBColumn(); blobs.name = "k"; blobs.type = .bytes; blobs.bytesValues = [Data([0]), Data(), Data([1, 2])]
        request.entities = [ids, shops, blobs]
        let decoded = try OnlineRequestDecoder.decode(ByteBuffer(bytes: try request.serializedBytes() as [UInt8]))
        XCTAssertEqual(try decoded.references(), request.features)
        XCTAssertTrue(decoded.fullFeatureNames)
        XCTAssertEqual(decoded.service, "")
        XCTAssertEqual(decoded.entities.map(\.name), ["user_id", "shop", "k"])
        XCTAssertEqual(decoded.entities[0].int64s, [1, -2, .max])
        XCTAssertEqual(decoded.entities[0].nullRows, [1])
        XCTAssertEqual(decoded.entities[1].strings, ["a", "", "ç"])
        XCTAssertEqual(decoded.entities[2].bytes, [Data([0]), Data(), Data([1, 2])])

        var byService = PBGetOnlineFeaturesRequest()
        byService.featureService = "fraud_v1"
        byService.entities = [ids]
        let other = try OnlineRequestDecoder.decode(ByteBuffer(bytes: try byService.serializedBytes() as [UInt8]))
        XCTAssertEqual(other.service, "fraud_v1")
        XCTAssertEqual(try other.references(), [])
        XCTAssertNotEqual(other.planKey, decoded.planKey)
    }

    func testReusedColumnStorageCarriesNothingOverFromTheLastRequest() throws {
        // A connection parses each request into the same column storage.
        var ids = PBColumn(); ids.name = "user_id"; ids.type = .int64; ids.int64Values = [1, 2, 3]; ids.nullRows = [2]
        var shops = PBColumn(); shops.name = "shop"; shops.type = .string; shops.stringValues = ["a", "b", "c"]
        var first = PBGetOnlineFeaturesRequest(); first.features = ["v:f"]; first.entities = [ids, shops]
        var unnamed = PBColumn(); unnamed.type = .float64; unnamed.float64Values = [0.5]
        var second = PBGetOnlineFeaturesRequest(); second.features = ["v:f"]; second.entities = [unnamed]
        var storage: [Column] = []
        for request in [first, second, first] {
            let body = ByteBuffer(bytes: try request.serializedBytes() as [UInt8])
            let reused = try OnlineRequestDecoder.decode(body, reusing: &storage).entities
            let fresh = try OnlineRequestDecoder.decode(body).entities
            XCTAssertEqual(reused.count, fresh.count)
            for (a, b) in zip(reused, fresh) {
                XCTAssertEqual(a.name, b.name)
                XCTAssertEqual(a.type, b.type)
                XCTAssertEqual(a.int64s, b.int64s)
                XCTAssertEqual(a.float64s, b.float64s)
                XCTAssertEqual(a.strings, b.strings)
                XCTAssertEqual(a.nullRows, b.nullRows)
            }
        }
        XCTAssertEqual(storage.map(\.name), ["user_id", "shop"])
    }

    func testUnpackedRepeatedFieldsReorderedFieldsAndUnknownFields() throws {
        // Column{ int64_values: 5 (unpacked), name: "id", 99: "x", type: INT64, int64_values: 7, null_rows: 1 (unpacked) }
        let column: [UInt8] = [0x20, 0x05, 0x0A, 0x02, 0x69, 0x64, 0x9A, 0x06, 0x01, 0x78, 0x10, 0x01, 0x20, 0x07, 0x50, 0x01]
        // Request{ 4: true, 3: column, 7 (unknown fixed32), 1: "v:f" }
        var body: [UInt8] = [0x20, 0x01, 0x1A, UInt8(column.count)] + column
        body += [0x3D, 1, 2, 3, 4, 0x0A, 0x03, 0x76, 0x3A, 0x66]
        let decoded = try OnlineRequestDecoder.decode(ByteBuffer(bytes: body))
        XCTAssertEqual(try decoded.references(), ["v:f"])
        XCTAssertTrue(decoded.fullFeatureNames)
        XCTAssertEqual(decoded.entities.first?.name, "id")
        XCTAssertEqual(decoded.entities.first?.int64s, [5, 7])
        XCTAssertEqual(decoded.entities.first?.nullRows, [1])
    }

    func testAReferenceThatIsNotUTF8IsRefusedWhenResolved() throws {
        let decoded = try OnlineRequestDecoder.decode(ByteBuffer(bytes: [0x0A, 0x02, 0xFF, 0xFE]))
        XCTAssertThrowsError(try decoded.references()) { XCTAssertEqual(($0 as? WireError)?.code, 3) }
    }

    func testPlanKeysDistinguishWhatMatters() throws {
        func key(_ features: [String], _ service: String = "", _ full: Bool = false) throws -> [UInt8] {
            var r = PBGetOnlineFeaturesRequest()
            r.features = features; r.featureService = service; r.fullFeatureNames = full
            return try OnlineRequestDecoder.decode(ByteBuffer(bytes: try r.serializedBytes() as [UInt8])).planKey
        }
        XCTAssertEqual(try key(["a:b", "c:d"]), try key(["a:b", "c:d"]))
        XCTAssertNotEqual(try key(["a:b", "c:d"]), try key(["c:d", "a:b"]))
        XCTAssertNotEqual(try key(["a:bc:d"]), try key(["a:b", "c:d"]))
        XCTAssertNotEqual(try key(["a:b"]), try key(["a:b"], "", true))
        XCTAssertNotEqual(try key([], "s"), try key([], "t"))
    }

    func testAKnownKeyIsSteppedOverWithTheSameResult() throws {
        func body(_ features: [String], _ ids: [Int64]) throws -> ByteBuffer {
            var r = PBGetOnlineFeaturesRequest()
            r.features = features
            var column = PBColumn(); column.name = "id"; column.type = .int64; column.int64Values = ids
            r.entities = [column]
            return ByteBuffer(bytes: try r.serializedBytes() as [UInt8])
        }
        let known = try OnlineRequestDecoder.decode(body(["a:b", "c:d"], [1])).planKey
        for features in [["a:b", "c:d"], ["a:b", "c:d", "e:f"], ["a:b"], ["x:y", "a:b", "c:d"]] {
            let plain = try OnlineRequestDecoder.decode(body(features, [7, 8]))
            let fast = try OnlineRequestDecoder.decode(body(features, [7, 8]), known: known)
            XCTAssertEqual(fast.planKey, plain.planKey, "\(features)")
            XCTAssertEqual(try fast.references(), features)
            XCTAssertEqual(fast.hasPlanKey(known), features == ["a:b", "c:d"])
            XCTAssertEqual(fast.entities.first?.int64s, [7, 8])
        }
    }

    func testMalformedBodiesAreInvalidArgument() {
        let bad: [[UInt8]] = [
            [0x0A, 0x10, 0x61],                 // reference longer than the body
            [0x1A, 0x03, 0x10, 0x80],           // truncated varint inside a column
            [0x1A, 0x02, 0x10, 0x63],           // unknown value type 99
            [0x0F],                             // wire type 7
            [0x1A, 0x04, 0x22, 0x05, 0x01, 0x02], // packed int64s longer than the column
        ]
        for body in bad {
            XCTAssertThrowsError(try OnlineRequestDecoder.decode(ByteBuffer(bytes: body)), "\(body)") { error in
                XCTAssertEqual((error as? WireError)?.code, 3)
            }
        }
    }
}
