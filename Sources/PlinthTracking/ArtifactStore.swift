// ArtifactStore: run artifacts as content-addressed blobs beside the LMDB
// environment, `<data-dir>/blobs/sha256/ab/cdef…`, with LMDB holding each
// run's (path -> digest, size) listing.
//
// An upload streams into a temporary file in `blobs/tmp` while it is
// hashed; the size limit is checked before each chunk is written, so an
// oversized artifact is refused before more than the limit is stored. On
// finish the file is synced and renamed onto its digest's path (a rename is
// atomic, so a blob is either whole or absent), then listed under the run.
// Identical content is stored once. Artifact paths are relative and may not
// escape the run: no `..`, no absolute path, no empty or `.` component.
//
// A client may announce the file's sha256 first (`expected_digest`): when
// a blob of that digest is already here, nothing needs to be sent
// (`existing`). A blob is only ever named by the digest this store computed
// from its bytes, so answering "already stored" records no digest it has not
// verified; an upload that goes on must hash to the announced digest, or it
// is refused and nothing is stored.
import Crypto
import Foundation
import PlinthStorage

/// One listed artifact of a run.
public struct Artifact: Codable, Sendable, Equatable {
    public var path: String
    public var digest: String
    public var size: Int64
    public var createdMs: Int64

    public init(path: String, digest: String, size: Int64, createdMs: Int64) {
        self.path = path
        self.digest = digest
        self.size = size
        self.createdMs = createdMs
    }
}

// Safe: `uploads` is read and written only under `lock`; the rest is immutable after init.
public final class ArtifactStore: @unchecked Sendable {
    public let tracking: TrackingStore
    /// `<data-dir>/blobs`.
    public let root: String
    /// The largest artifact accepted, in bytes.
    public let maxBytes: Int64
    let artifacts: Table
    private let lock = ConditionLock()
    private var uploads: [String: Upload] = [:]
    /// Uploads idle for longer than this are dropped (their client went away).
    static let abandonedAfterMs: Int64 = 3_600_000

    // Safe: `hasher`, `size`, `touchedMs` and the handle's writes only under `lock`; the rest is immutable.
    final class Upload: @unchecked Sendable {
        let id: String
        let runId: String
        let path: String
        let temporary: String
        let handle: FileHandle
        /// The sha256 the client announced, if it did; the bytes must match it.
        let expectedDigest: String?
        var hasher = SHA256()
        var size: Int64 = 0
        var touchedMs: Int64
        /// Serializes chunks of one upload; different uploads run in parallel.
        let lock = ConditionLock()

        init(id: String, runId: String, path: String, temporary: String, handle: FileHandle, expectedDigest: String?, now: Int64) {
            self.id = id
            self.runId = runId
            self.path = path
            self.temporary = temporary
            self.handle = handle
            self.expectedDigest = expectedDigest
            self.touchedMs = now
        }
    }

    /// - Parameter root: the blob directory (default: `blobs` beside the
    ///   tracking environment's files).
    public init(tracking: TrackingStore, maxBytes: Int64, root: String? = nil) throws {
        self.tracking = tracking
        self.maxBytes = maxBytes
        self.root = root ?? (tracking.environment.path as NSString).appendingPathComponent("blobs")
        artifacts = try tracking.environment.table("trk_artifacts")
        // Temporary files of uploads cut short by a restart are garbage.
        let tmp = (self.root as NSString).appendingPathComponent("tmp")
        try? FileManager.default.removeItem(atPath: tmp)
        do {
            try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: (self.root as NSString).appendingPathComponent("sha256"),
                                                    withIntermediateDirectories: true)
        } catch {
            throw TrackingError.failedPrecondition("cannot create the blob directory \(self.root): \(error.localizedDescription)")
        }
    }

    /// Refuses paths that would escape the run's artifact folder.
    public static func checkPath(_ path: String) throws {
        guard !path.isEmpty, path.utf8.count <= 1024 else {
            throw TrackingError.invalidArgument("an artifact path must be 1 to 1024 bytes")
        }
        guard !path.hasPrefix("/"), !path.hasPrefix("~") else {
            throw TrackingError.invalidArgument("artifact path '\(path)' is absolute; give a path relative to the run")
        }
        guard !path.contains("\\"), !path.utf8.contains(0) else {
            throw TrackingError.invalidArgument("artifact path '\(path)' may not contain backslashes or NUL")
        }
        for component in path.split(separator: "/", omittingEmptySubsequences: false) {
            if component == ".." { throw TrackingError.invalidArgument("artifact path '\(path)' escapes the run with '..'") }
            if component.isEmpty || component == "." {
                throw TrackingError.invalidArgument("artifact path '\(path)' has an empty or '.' component")
            }
        }
    }

    /// Where a blob lives: `blobs/sha256/ab/cdef…`.
    public func blobPath(_ digest: String) -> String {
        "\(root)/sha256/\(digest.prefix(2))/\(digest.dropFirst(2))"
    }

    /// Whether `digest` is a sha256 as this store names blobs: 64 lowercase hex digits.
    public static func isDigest(_ digest: String) -> Bool {
        digest.utf8.count == 64 && digest.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }

    private static func checkExpected(_ digest: String?) throws {
        if let digest, !isDigest(digest) {
            throw TrackingError.invalidArgument("expected digest '\(digest)' is not a sha256 (64 lowercase hex digits)")
        }
    }

    private static func checkMatches(_ digest: String, expected: String?, path: String) throws {
        if let expected, expected != digest {
            throw TrackingError.dataLoss("artifact '\(path)' has sha256 \(digest), not the announced \(expected): the bytes changed on the way (or the file changed while it was read); nothing was stored")
        }
    }

    /// The upload that needs no bytes: when a blob of `digest` is already
    /// stored (hashed by this store when its bytes came), lists it under the
    /// run as `path` (nothing to list without a run) and returns it; nil when
    /// no such blob is here, and the bytes must be uploaded.
    public func existing(runId: String, path: String, digest: String, now: Int64 = currentMillis()) async throws -> Artifact? {
        try Self.checkExpected(digest)
        if !runId.isEmpty { try checkRunning(runId, path: path) }
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: blobPath(digest)),
              attributes[.type] as? FileAttributeType == .typeRegular,
              let size = (attributes[.size] as? NSNumber)?.int64Value else { return nil }
        return try await record(Artifact(path: path, digest: digest, size: size, createdMs: now), runId: runId)
    }

    /// Starts an upload of `path` into a RUNNING run; with an empty run id
    /// the blob is stored without a listing (model files registered without a run).
    /// With `expectedDigest`, `finish` refuses bytes that hash to anything else.
    /// - Returns: the upload id that later chunks carry.
    public func beginUpload(runId: String, path: String, expectedDigest: String? = nil, now: Int64 = currentMillis()) throws -> String {
        try Self.checkExpected(expectedDigest)
        if !runId.isEmpty { try checkRunning(runId, path: path) }
        dropAbandoned(now: now)
        let id = UUID().uuidString.lowercased()
        let temporary = "\(root)/tmp/\(id)"
        guard FileManager.default.createFile(atPath: temporary, contents: nil),
              let handle = FileHandle(forWritingAtPath: temporary) else {
            throw TrackingError.failedPrecondition("cannot create a temporary file in \(root)/tmp")
        }
        let upload = Upload(id: id, runId: runId, path: path, temporary: temporary, handle: handle,
                            expectedDigest: expectedDigest, now: now)
        lock.withLock { uploads[id] = upload }
        return id
    }

    private func checkRunning(_ runId: String, path: String) throws {
        try Self.checkPath(path)
        let record = try tracking.run(id: runId)
        guard record.run.status == .running, record.run.lifecycle == .active else {
            throw TrackingError.failedPrecondition("run \(runId) is \(record.run.lifecycle == .deleted ? "deleted" : record.run.status.rawValue); artifacts go to a RUNNING run")
        }
    }

    private func upload(_ id: String) throws -> Upload {
        guard let upload = lock.withLock({ uploads[id] }) else {
            throw TrackingError.notFound("no upload has id '\(id)' (it finished, failed or was idle for an hour)")
        }
        return upload
    }

    /// Appends a chunk. Over the size limit, the upload is dropped and refused
    /// before the chunk is written.
    /// - Returns: the bytes received so far.
    public func append(uploadId: String, _ bytes: [UInt8], now: Int64 = currentMillis()) throws -> Int64 {
        let upload = try upload(uploadId)
        return try upload.lock.withLock { () throws -> Int64 in
            guard upload.size + Int64(bytes.count) <= maxBytes else {
                abort(upload)
                throw TrackingError.tooLarge("artifact '\(upload.path)' is over the limit of \(maxBytes) bytes (max_artifact_bytes); the upload was dropped")
            }
            do {
                try upload.handle.write(contentsOf: bytes)
            } catch {
                abort(upload)
                throw TrackingError.failedPrecondition("writing the artifact failed: \(error.localizedDescription)")
            }
            upload.hasher.update(data: bytes)
            upload.size += Int64(bytes.count)
            upload.touchedMs = now
            return upload.size
        }
    }

    /// Syncs and stores the blob under its digest, then lists it under the run.
    public func finish(uploadId: String, now: Int64 = currentMillis()) async throws -> Artifact {
        let upload = try upload(uploadId)
        let (digest, size) = try upload.lock.withLock { () throws -> (String, Int64) in
            lock.withLock { _ = uploads.removeValue(forKey: uploadId) }
            defer { try? upload.handle.close() }
            let digest = upload.hasher.finalize().hex
            do {
                try Self.checkMatches(digest, expected: upload.expectedDigest, path: upload.path)
                let target = blobPath(digest)
                let folder = (target as NSString).deletingLastPathComponent
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
                if FileManager.default.fileExists(atPath: target) {
                    // Content-addressed: the same bytes are stored (and were
                    // synced when they first came), so this copy needs no sync.
                    try FileManager.default.removeItem(atPath: upload.temporary)
                } else {
                    try upload.handle.synchronize()
                    if rename(upload.temporary, target) != 0 {
                        throw TrackingError.failedPrecondition("cannot move the artifact into \(folder): errno \(errno)")
                    }
                }
            } catch {
                try? FileManager.default.removeItem(atPath: upload.temporary)
                throw error
            }
            return (digest, upload.size)
        }
        return try await record(Artifact(path: upload.path, digest: digest, size: size, createdMs: now), runId: upload.runId)
    }

    /// Stores an artifact that came whole, in one request. It is hashed in
    /// memory first: bytes already stored (the same digest) are not written
    /// again, just listed; bytes that do not hash to `expectedDigest` are refused.
    public func store(runId: String, path: String, bytes: [UInt8], expectedDigest: String? = nil,
                      now: Int64 = currentMillis()) async throws -> Artifact {
        try Self.checkExpected(expectedDigest)
        let digest = SHA256.hash(data: bytes).hex
        try Self.checkMatches(digest, expected: expectedDigest, path: path)
        guard Int64(bytes.count) <= maxBytes, FileManager.default.fileExists(atPath: blobPath(digest)) else {
            let id = try beginUpload(runId: runId, path: path, now: now)
            _ = try append(uploadId: id, bytes, now: now)
            return try await finish(uploadId: id, now: now)
        }
        if !runId.isEmpty { try checkRunning(runId, path: path) }
        return try await record(Artifact(path: path, digest: digest, size: Int64(bytes.count), createdMs: now), runId: runId)
    }

    /// Lists a stored blob under its run (nothing to list without a run).
    private func record(_ artifact: Artifact, runId: String) async throws -> Artifact {
        if runId.isEmpty { return artifact }
        let runs = tracking.runs
        let table = artifacts
        let value = try TrackingStore.encode(artifact)
        try await tracking.environment.writer.write(durability: .strict) { txn in
            guard let raw = try txn.get(runs, Array(runId.utf8)) else { throw TrackingError.notFound("no run has id '\(runId)'") }
            let run = try JSONDecoder().decode(Run.self, from: Data(raw))
            guard run.status == .running else {
                throw TrackingError.failedPrecondition("run \(runId) ended \(run.status.rawValue) during the upload")
            }
            try txn.put(table, makeKey { $0.append(runId); $0.append(artifact.path) }, value)
        }
        return artifact
    }

    /// Abandons an upload and deletes what it stored.
    public func cancel(uploadId: String) {
        if let upload = lock.withLock({ uploads[uploadId] }) { upload.lock.withLock { abort(upload) } }
    }

    private func abort(_ upload: Upload) {
        lock.withLock { _ = uploads.removeValue(forKey: upload.id) }
        try? upload.handle.close()
        try? FileManager.default.removeItem(atPath: upload.temporary)
    }

    private func dropAbandoned(now: Int64) {
        // `touchedMs` is the upload's, guarded by its own lock; that lock is
        // taken after `lock` is released, as `abort` takes them in the other
        // order.
        let open = lock.withLock { Array(uploads.values) }
        for upload in open {
            upload.lock.withLock {
                if now - upload.touchedMs > Self.abandonedAfterMs { abort(upload) }
            }
        }
    }

    /// The run's artifacts whose paths start with `prefix` (a folder, or "" for all).
    public func list(runId: String, prefix: String = "") throws -> [Artifact] {
        _ = try tracking.run(id: runId)
        let start = makeKey { $0.append(runId) }
        return try tracking.environment.read { txn in
            var out: [Artifact] = []
            try txn.scan(artifacts, from: start) { key, value in
                guard hasPrefix(key, start) else { return false }
                let artifact = try JSONDecoder().decode(Artifact.self, from: Data(value))
                if prefix.isEmpty || artifact.path == prefix || artifact.path.hasPrefix(prefix.hasSuffix("/") ? prefix : prefix + "/") {
                    out.append(artifact)
                }
                return true
            }
            return out
        }
    }

    /// The listing entry of one artifact.
    public func artifact(runId: String, path: String) throws -> Artifact {
        try Self.checkPath(path)
        _ = try tracking.run(id: runId)
        return try tracking.environment.read { txn in
            guard let raw = try txn.get(artifacts, makeKey { $0.append(runId); $0.append(path) }) else {
                throw TrackingError.notFound("run \(runId) has no artifact '\(path)'")
            }
            return try JSONDecoder().decode(Artifact.self, from: Data(raw))
        }
    }

    /// Reads a blob in chunks of at most `chunkSize` bytes, in order.
    public func read(digest: String, chunkSize: Int = 1 << 20, _ body: ([UInt8]) throws -> Void) throws {
        guard let handle = FileHandle(forReadingAtPath: blobPath(digest)) else {
            throw TrackingError.notFound("blob \(digest) is missing from \(root)")
        }
        defer { try? handle.close() }
        while true {
            let data = try handle.read(upToCount: chunkSize) ?? Data()
            if data.isEmpty { return }
            try body(Array(data))
        }
    }
}
