// Serving without a socket: a registered version with a signature (feature
// references, a request field, defaults) assembled for entities that are
// present, missing, null or past the view's TTL; the vector, the statuses
// and the defaults used; bad signatures refused at load; and an alias moved
// under a stream of requests, none of which fails.
import Foundation
import PlinthFeatures
import PlinthInference
import PlinthRegistry
import PlinthStorage
import Synchronization
import Testing
@testable import PlinthServing

/// A data directory with the feature store, the registry and model files
/// named by made-up digests; its own temporary folder, removed by `close`.
final class ServingFixture: Sendable {
    static let definitions = """
    project: serving
    entities:
      - {name: user, join_key: user_id, type: int64}
    feature_views:
      - name: stats
        entities: [user]
        ttl: 1h
        features:
          - {name: count, type: int64}
          - {name: score, type: float32}
    """
    /// Microseconds since the epoch that every read in these tests uses.
    static let now: Int64 = 1_700_000_000_000_000
    static let minute: Int64 = 60_000_000

    let dir: String
    let environment: Environment
    let store: OnlineStore
    let registry: RegistryStore
    let predictor: Predictor

    init() throws {
        dir = NSTemporaryDirectory() + "plinth-serving-unit-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir + "/models", withIntermediateDirectories: true)
        var options = Environment.Options()
        options.mapSize = 1 << 24
        options.durable = false
        environment = try Environment(path: dir + "/data", options: options)
        let catalog = try Catalog(environment: environment)
        _ = try catalog.apply(DefinitionParser.parse(Self.definitions))
        store = try OnlineStore(environment: environment, catalog: catalog)
        registry = try RegistryStore(environment: environment)
        predictor = Predictor(store: store, offline: try OfflineStore(environment: environment, catalog: catalog))
        // User 1 fresh, user 3 fresh with a null score, user 4 two hours
        // old (the view's TTL is one hour); user 2 never pushed.
        var ids = Column(name: "user_id", type: .int64)
        ids.int64s = [1, 3, 4]
        var count = Column(name: "count", type: .int64)
        count.int64s = [3, 4, 5]
        var score = Column(name: "score", type: .float32)
        score.float32s = [0.5, 0, 0.25]
        score.nullRows = [1]
        _ = try store.push(view: "stats", columns: [ids, count, score],
                           eventTimes: [Self.now - Self.minute, Self.now - Self.minute, Self.now - 120 * Self.minute])
    }

    func close() {
        environment.close()
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// score = intercept + count + 10 * score + 100 * amount, inputs by position.
    static func linearModel(intercept: Double) -> String {
        """
        {"plinth_model": "linear", "format_version": 1, "n_features": 3, "feature_names": null,
         "coefficients": [[1, 10, 100]], "intercepts": [\(intercept)], "output": "identity"}
        """
    }

    static let signature = Signature(featureReferences: ["stats:count", "stats:score"],
                                     requestFields: [SignatureField(name: "amount", type: "float64")],
                                     defaults: ["stats:count": 7, "amount": 2])

    /// Writes a model file under a made-up digest (the registry checks only
    /// the digest's form; `artifactPath` maps it to the file).
    func modelFile(intercept: Double, digit: Character) throws -> String {
        let digest = String(repeating: digit, count: 64)
        try Self.linearModel(intercept: intercept).write(toFile: artifactPath(digest), atomically: true, encoding: .utf8)
        return digest
    }

    func artifactPath(_ digest: String) -> String { dir + "/models/" + digest }

    func served(_ signature: Signature = ServingFixture.signature) throws -> ServedModel {
        let model = try ModelLoader.load(data: Array(Self.linearModel(intercept: 0.5).utf8))
        return try ServedModel(name: "fraud", version: 1, format: "plinth-json", model: model, signature: signature, store: store)
    }

    /// Users 1 to 4; amounts 1, 1, null, 3.
    static func request() -> [Column] {
        var users = Column(name: "user_id", type: .int64)
        users.int64s = [1, 2, 3, 4]
        var amounts = Column(name: "amount", type: .float64)
        amounts.float64s = [1, 1, 0, 3]
        amounts.nullRows = [2]
        return [users, amounts]
    }

    /// The input vectors as Predictor assembles them, row after row.
    func vectors(_ served: ServedModel, _ inputs: PredictInputs) throws -> [Float] {
        var m = [Float](repeating: .nan, count: inputs.rows * served.model.featureCount)
        try m.withUnsafeMutableBufferPointer { m in
            served.fillRequestFields(inputs, into: m)
            if let plan = served.plan {
                try store.withRows(plan, entities: inputs.keys, now: Self.now) { rows in served.fillFeatures(from: rows, into: m) }
            }
        }
        return m
    }
}

/// Float vectors compared with NaN equal to NaN (a missing input).
private func same(_ a: [Float], _ b: [Float]) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { $0 == $1 || ($0.isNaN && $1.isNaN) }
}

@Suite struct SignatureAssemblyTests {
    @Test func assemblesPresentMissingNullAndExpiredRowsWithDefaults() throws {
        let f = try ServingFixture()
        defer { f.close() }
        let served = try f.served()
        #expect(served.entityKeys == [ServingInput(name: "user_id", type: .int64)])
        #expect(served.signatureInputs == ["stats:count", "stats:score", "amount"])
        #expect(!served.matchedByName, "the model records no feature names: inputs by position")
        let inputs = try served.inputs(ServingFixture.request(), maxRows: 10)
        let vectors = try f.vectors(served, inputs)
        // count, score, amount. Missing count: its default 7; missing score:
        // no default, NaN; null amount: its default 2.
        let expected: [Float] = [
            3, 0.5, 1,    // user 1: present
            7, .nan, 1,   // user 2: not found
            4, .nan, 2,   // user 3: null score, null amount
            7, .nan, 3,   // user 4: outside max age
        ]
        #expect(same(vectors, expected), "\(vectors)")

        let output = try f.predictor.predict(served, inputs, returnFeatures: true, now: ServingFixture.now)
        #expect(output.rows == 4)
        #expect(abs(output.values[0] - 108.5) < 1e-9, "0.5 + 3 + 10 * 0.5 + 100 * 1")
        let statuses = output.features?.map(\.statuses)
        #expect(statuses == [
            [.present, .notFound, .present, .outsideMaxAge],
            [.present, .notFound, .nullValue, .outsideMaxAge],
            [.present, .present, .nullValue, .present],
        ])
        #expect(output.features?[0].eventTimes[0] == ServingFixture.now - ServingFixture.minute)
        #expect(output.features?[0].eventTimes[3] == ServingFixture.now - 120 * ServingFixture.minute)
    }

    @Test func predictInPlaceGivesWhatPredictGives() throws {
        let f = try ServingFixture()
        defer { f.close() }
        let served = try f.served(Signature(featureReferences: ["stats:count", "stats:score"],
                                            requestFields: [SignatureField(name: "amount", type: "float64")],
                                            defaults: ["stats:count": 7, "stats:score": 0, "amount": 2]))
        let inputs = try served.inputs(ServingFixture.request(), maxRows: 10)
        let whole = try f.predictor.predict(served, inputs, now: ServingFixture.now).values
        var inPlace: [Double] = []
        try f.predictor.predictInPlace(served, inputs, now: ServingFixture.now) { inPlace = Array($0) }
        #expect(whole == inPlace)
        #expect(whole == [108.5, 107.5, 204.5, 307.5])
    }

    @Test func refusesBadSignaturesAtLoadAndBadRequestsPerCall() throws {
        let f = try ServingFixture()
        defer { f.close() }
        #expect(throws: ServingError.self) {
            try f.served(Signature(featureReferences: ["stats:count", "stats:score"],
                                   requestFields: [SignatureField(name: "amount", type: "float64")],
                                   defaults: ["stats:nope": 1]))
        }
        #expect(throws: ServingError.self, "two inputs for a three-input model") {
            try f.served(Signature(featureReferences: ["stats:count", "stats:score"]))
        }
        let served = try f.served()
        var stranger = Column(name: "merchant", type: .int64)
        stranger.int64s = [1, 2, 3, 4]
        #expect(throws: ServingError.self) { try served.inputs(ServingFixture.request() + [stranger], maxRows: 10) }
        #expect(throws: ServingError.self) { try served.inputs(ServingFixture.request(), maxRows: 3) }
        #expect(throws: ServingError.self, "the entity key is missing") { try served.inputs([ServingFixture.request()[1]], maxRows: 10) }
    }
}

@Suite struct ModelRepositoryTests {
    @Test func aMovedAliasIsServedWithoutAFailedRequest() async throws {
        let f = try ServingFixture()
        defer { f.close() }
        let first = try f.modelFile(intercept: 0.5, digit: "a")
        let second = try f.modelFile(intercept: 1000.5, digit: "b")
        _ = try await f.registry.createVersion(NewVersion(model: "fraud", artifactDigest: first, artifactFormat: "plinth-json",
                                                          signature: ServingFixture.signature), aliases: ["production"])
        _ = try await f.registry.createVersion(NewVersion(model: "fraud", artifactDigest: second, artifactFormat: "plinth-json",
                                                          signature: ServingFixture.signature))
        let repository = ModelRepository(registry: f.registry, store: f.store, artifactPath: { [dir = f.dir] in dir + "/models/" + $0 })

        /// One request as the server makes it: memory first, the registry
        /// when the lookup says so. Returns (version, score of user 1).
        @Sendable func request() throws -> (UInt64, Double) {
            let served: ServedModel
            switch try repository.lookup("fraud@production") {
            case .ready(let ready): served = ready
            case .needsLoad(let reference): served = try repository.load(reference)
            }
            var user = Column(name: "user_id", type: .int64)
            user.int64s = [1]
            var amount = Column(name: "amount", type: .float64)
            amount.float64s = [1]
            let output = try f.predictor.predict(served, served.inputs([user, amount], maxRows: 1), now: ServingFixture.now)
            return (served.version, output.values[0])
        }
        let before = try request()
        #expect(before.0 == 1 && before.1 == 108.5, "\(before)")

        // Requests run without pause while the alias moves; each must
        // succeed, on the old version or the new, never back to the old.
        let stop = Atomic(false)
        let finished = Atomic(false)
        /// The versions requests were answered by, each change once.
        let seen = Mutex<[UInt64]>([])
        let failures = Mutex<[String]>([])
        let traffic = Thread {
            while !stop.load(ordering: .relaxed) {
                do {
                    let (version, value) = try request()
                    if value != (version == 1 ? 108.5 : 1108.5) { failures.withLock { $0.append("v\(version) gave \(value)") } }
                    seen.withLock { if $0.last != version { $0.append(version) } }
                } catch {
                    failures.withLock { $0.append("\(error)") }
                }
                // Back to back, but leaving the core to the repository's
                // refresher when the machine has few.
                sched_yield()
            }
            finished.store(true, ordering: .releasing)
        }
        traffic.start()
        _ = try await f.registry.setAlias(model: "fraud", alias: "production", version: 2, who: "test", reason: "swap")
        repository.aliasesChanged(model: "fraud")
        // The switch happens on the repository's own queue: wait for it to
        // be visible (and for traffic to have seen it), with a deadline.
        let deadline = ContinuousClock.now + .seconds(60)
        while seen.withLock({ $0.last }) != 2, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(5))
        }
        stop.store(true, ordering: .relaxed)
        while !finished.load(ordering: .acquiring) { try await Task.sleep(for: .milliseconds(1)) }

        #expect(failures.withLock { $0 } == [])
        let versions = seen.withLock { $0 }
        #expect(versions.last == 2, "the new version was served within the deadline")
        #expect(versions == [1, 2], "once on version 2, never back to 1")
        #expect(repository.counters.swaps >= 1)
        let after = try request()
        #expect(after.0 == 2 && after.1 == 1108.5, "\(after)")
    }
}
