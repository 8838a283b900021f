// Artifacts: streamed upload into the content-addressed blob folder, named
// by the same sha256 as before swift-crypto (a known value, from hashlib), the size limit refused before storing,
// listing, and paths that escape the run refused.
import Crypto
import Foundation
import XCTest
@testable import PlinthTracking
import PlinthStorage

final class ArtifactStoreTests: XCTestCase {
    func sha(_ bytes: [UInt8]) -> String { SHA256.hash(data: bytes).hex }

    func testUploadListDownload() async throws {
        let f = try TrackingFixture()
        let artifacts = try ArtifactStore(tracking: f.store, maxBytes: 1 << 20)
        let e = try await f.store.createExperiment(name: "a")
        let run = try await f.store.startRun(experimentId: e.id)
        let content = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let upload = try artifacts.beginUpload(runId: run.id, path: "model/model.json")
        var sent = 0
        while sent < content.count {
            let end = min(content.count, sent + 65_536)
            XCTAssertEqual(try artifacts.append(uploadId: upload, Array(content[sent..<end])), Int64(end))
            sent = end
        }
        let stored = try await artifacts.finish(uploadId: upload)
        XCTAssertEqual(stored.digest, "c12fb0010fbd782b0ffcb958d34a9cd29f9c42692ff2f8361f3379ddd0790932")
        XCTAssertEqual(stored.size, 300_000)
        let blob = artifacts.blobPath(stored.digest)
        XCTAssertTrue(blob.hasSuffix("/blobs/sha256/\(stored.digest.prefix(2))/\(stored.digest.dropFirst(2))"))
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: blob)), Data(content))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: artifacts.root + "/tmp"), [])

        // Same content again under another path: one blob, two listings.
        let again = try artifacts.beginUpload(runId: run.id, path: "copy.bin")
        _ = try artifacts.append(uploadId: again, content)
        let copy = try await artifacts.finish(uploadId: again)
        XCTAssertEqual(copy.digest, stored.digest)
        XCTAssertEqual(try artifacts.list(runId: run.id).map(\.path), ["copy.bin", "model/model.json"])
        XCTAssertEqual(try artifacts.list(runId: run.id, prefix: "model").map(\.path), ["model/model.json"])
        XCTAssertEqual(try artifacts.list(runId: run.id, prefix: "mod").map(\.path), [])

        var read: [UInt8] = []
        try artifacts.read(digest: try artifacts.artifact(runId: run.id, path: "model/model.json").digest, chunkSize: 10_000) { chunk in
            XCTAssertLessThanOrEqual(chunk.count, 10_000)
            read += chunk
        }
        XCTAssertEqual(read, content)
        XCTAssertThrowsError(try artifacts.artifact(runId: run.id, path: "nope"))
    }

    func testOversizedUploadIsRefusedBeforeStoring() async throws {
        let f = try TrackingFixture()
        let artifacts = try ArtifactStore(tracking: f.store, maxBytes: 100_000)
        let e = try await f.store.createExperiment(name: "a")
        let run = try await f.store.startRun(experimentId: e.id)
        let upload = try artifacts.beginUpload(runId: run.id, path: "big.bin")
        _ = try artifacts.append(uploadId: upload, [UInt8](repeating: 1, count: 60_000))
        XCTAssertThrowsError(try artifacts.append(uploadId: upload, [UInt8](repeating: 1, count: 60_000))) { error in
            guard case .tooLarge = error as? TrackingError else { return XCTFail("\(error)") }
        }
        // The temporary file is gone and the upload id is dead.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: artifacts.root + "/tmp"), [])
        XCTAssertThrowsError(try artifacts.append(uploadId: upload, [1]))
        XCTAssertEqual(try artifacts.list(runId: run.id), [])
    }

    func testAWholeArtifactInOneRequestIsStoredOnceAndListedEachTime() async throws {
        let f = try TrackingFixture()
        let artifacts = try ArtifactStore(tracking: f.store, maxBytes: 1000)
        let e = try await f.store.createExperiment(name: "a")
        let run = try await f.store.startRun(experimentId: e.id)
        let bytes = Array("{\"learner\": {}}".utf8)
        let first = try await artifacts.store(runId: "", path: "", bytes: bytes)
        XCTAssertEqual(first.digest, sha(bytes))
        XCTAssertEqual(FileManager.default.contents(atPath: artifacts.blobPath(first.digest)).map(Array.init), bytes)
        // Known bytes: nothing is written again, but the run lists them.
        let again = try await artifacts.store(runId: run.id, path: "model/model.json", bytes: bytes)
        XCTAssertEqual(again.digest, first.digest)
        XCTAssertEqual(try artifacts.list(runId: run.id).map(\.path), ["model/model.json"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: artifacts.root + "/tmp"), [])
        // The same checks as a streamed upload: limits, paths, RUNNING runs.
        do {
            _ = try await artifacts.store(runId: run.id, path: "big.bin", bytes: [UInt8](repeating: 1, count: 1001))
            XCTFail("an oversized artifact was stored")
        } catch { guard case .tooLarge = error as? TrackingError else { return XCTFail("\(error)") } }
        do {
            _ = try await artifacts.store(runId: run.id, path: "../x", bytes: bytes)
            XCTFail("an escaping path was accepted")
        } catch { guard case .invalidArgument = error as? TrackingError else { return XCTFail("\(error)") } }
        _ = try await f.store.endRun(id: run.id, status: .finished)
        do {
            _ = try await artifacts.store(runId: run.id, path: "late.json", bytes: bytes)
            XCTFail("an ended run took an artifact")
        } catch { guard case .failedPrecondition = error as? TrackingError else { return XCTFail("\(error)") } }
    }

    func testAnnouncedDigestSkipsKnownBytesAndRefusesOthers() async throws {
        let f = try TrackingFixture()
        let artifacts = try ArtifactStore(tracking: f.store, maxBytes: 1 << 20)
        let e = try await f.store.createExperiment(name: "a")
        let run = try await f.store.startRun(experimentId: e.id)
        let bytes = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let digest = sha(bytes)
        // Not stored yet: nothing is listed, the bytes must come.
        let unknown = try await artifacts.existing(runId: run.id, path: "m.bin", digest: digest)
        XCTAssertNil(unknown)
        XCTAssertEqual(try artifacts.list(runId: run.id), [])
        // Streamed with the announced digest: stored under the digest the store computed.
        let upload = try artifacts.beginUpload(runId: "", path: "", expectedDigest: digest)
        _ = try artifacts.append(uploadId: upload, Array(bytes[..<50_000]))
        _ = try artifacts.append(uploadId: upload, Array(bytes[50_000...]))
        let stored = try await artifacts.finish(uploadId: upload)
        XCTAssertEqual(stored.digest, digest)
        // Now known: listed under the run with the stored blob's size, no bytes sent.
        let known = try await artifacts.existing(runId: run.id, path: "m.bin", digest: digest)
        XCTAssertEqual(known?.digest, digest)
        XCTAssertEqual(known?.size, 100_000)
        XCTAssertEqual(try artifacts.artifact(runId: run.id, path: "m.bin").digest, digest)

        // Bytes that do not hash to the announced digest are refused and not stored.
        var other = bytes
        other[0] ^= 1
        let wrong = try artifacts.beginUpload(runId: run.id, path: "bad.bin", expectedDigest: digest)
        _ = try artifacts.append(uploadId: wrong, other)
        do {
            _ = try await artifacts.finish(uploadId: wrong)
            XCTFail("bytes with another digest were stored")
        } catch { guard case .dataLoss = error as? TrackingError else { return XCTFail("\(error)") } }
        XCTAssertFalse(FileManager.default.fileExists(atPath: artifacts.blobPath(sha(other))))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: artifacts.root + "/tmp"), [])
        do {
            _ = try await artifacts.store(runId: run.id, path: "bad.bin", bytes: other, expectedDigest: digest)
            XCTFail("a whole artifact with another digest was stored")
        } catch { guard case .dataLoss = error as? TrackingError else { return XCTFail("\(error)") } }
        XCTAssertFalse(FileManager.default.fileExists(atPath: artifacts.blobPath(sha(other))))
        XCTAssertEqual(try artifacts.list(runId: run.id).map(\.path), ["m.bin"])

        // A malformed digest is refused, not looked up.
        for bad in ["abc", String(repeating: "A", count: 64), "../../" + String(repeating: "a", count: 58)] {
            do {
                _ = try await artifacts.existing(runId: "", path: "", digest: bad)
                XCTFail("digest '\(bad)' was accepted")
            } catch { guard case .invalidArgument = error as? TrackingError else { return XCTFail("\(error)") } }
            XCTAssertThrowsError(try artifacts.beginUpload(runId: "", path: "", expectedDigest: bad))
        }
        // An ended run takes no listing, even of known bytes.
        _ = try await f.store.endRun(id: run.id, status: .finished)
        do {
            _ = try await artifacts.existing(runId: run.id, path: "late.bin", digest: digest)
            XCTFail("an ended run took an artifact")
        } catch { guard case .failedPrecondition = error as? TrackingError else { return XCTFail("\(error)") } }
    }

    func testEscapingPathsAreRefused() async throws {
        let f = try TrackingFixture()
        let artifacts = try ArtifactStore(tracking: f.store, maxBytes: 1000)
        let e = try await f.store.createExperiment(name: "a")
        let run = try await f.store.startRun(experimentId: e.id)
        for path in ["../x", "a/../../x", "/etc/passwd", "a//b", "./a", "a/.", "", "~/x", "a\\..\\b", "..", "a/.."] {
            XCTAssertThrowsError(try artifacts.beginUpload(runId: run.id, path: path), path) { error in
                guard case .invalidArgument = error as? TrackingError else { return XCTFail("\(path): \(error)") }
            }
        }
        XCTAssertNoThrow(try artifacts.beginUpload(runId: run.id, path: "a/b..c/d.txt"))
    }

    func testArtifactsGoToRunningRunsOnly() async throws {
        let f = try TrackingFixture()
        let artifacts = try ArtifactStore(tracking: f.store, maxBytes: 1000)
        let e = try await f.store.createExperiment(name: "a")
        let run = try await f.store.startRun(experimentId: e.id)
        _ = try await f.store.endRun(id: run.id, status: .finished)
        XCTAssertThrowsError(try artifacts.beginUpload(runId: run.id, path: "x")) { error in
            guard case .failedPrecondition = error as? TrackingError else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try artifacts.beginUpload(runId: "missing", path: "x")) { error in
            guard case .notFound = error as? TrackingError else { return XCTFail("\(error)") }
        }
    }
}
