// Services+Features: the Features service's methods — definitions,
// pushes and online reads — mapped onto PlinthFeatures.
import NIOCore
import PlinthFeatures
import PlinthStorage
import PlinthWire

extension Services {
    static let featureMethods: [String: MethodHandler] = [
        Method.applyDefinitions: MethodHandler { services, body, respond in
            services.applyDefinitions(body, respond)
        },
        Method.listDefinitions: MethodHandler { services, body, respond in
            services.listDefinitions(body, respond)
        },
        Method.push: MethodHandler { services, body, respond in
            services.push(body, respond)
        },
        Method.getOnlineFeatures: MethodHandler(inline: { services, body, context, out in
            try services.getOnlineFeatures(body, plans: context.plans, held: context.held, into: &out)
        }),
    ]

    func listDefinitions(_ body: ByteBuffer, _ respond: Responder) {
        do {
            let request = try decode(PBListDefinitionsRequest.self, body)
            let snapshot = catalog.snapshot
            var out = PBListDefinitionsResponse()
            if request.version != 0 {
                // Versions count per project, so a version alone names one
                // only where there is one project to count.
                let project: String
                if !request.project.isEmpty {
                    project = request.project
                } else if snapshot.projects.count == 1, let only = snapshot.projects.keys.first {
                    project = only
                } else if snapshot.projects.isEmpty {
                    throw FeatureStoreError.notFound("no definitions have been applied")
                } else {
                    throw FeatureStoreError.invalidArgument(
                        "a definitions version belongs to one project: name it (projects: \(snapshot.projects.keys.sorted().joined(separator: ", ")))")
                }
                let past = try catalog.definitions(of: project, at: request.version)
                var wire = past.wire
                wire.currentVersion = snapshot.projects[project]?.version ?? past.version
                out.projects = [wire]
            } else if request.project.isEmpty {
                out.projects = snapshot.projects.keys.sorted().compactMap { snapshot.projects[$0]?.wire }
            } else if let project = snapshot.projects[request.project] {
                out.projects = [project.wire]
            } else {
                throw FeatureStoreError.notFound("unknown project '\(request.project)'")
            }
            respond.succeed(out)
        } catch { respond.fail(error) }
    }

    func applyDefinitions(_ body: ByteBuffer, _ respond: Responder) {
        do {
            let request = try decode(PBApplyDefinitionsRequest.self, body)
            let spec = try DefinitionParser.parse(request.yaml)
            catalog.apply(spec, dryRun: request.dryRun, now: currentMicros()) { result in
                switch result {
                case .success(let applied):
                    var out = PBApplyDefinitionsResponse()
                    out.project = applied.project
                    out.version = applied.version
                    out.changed = applied.changed
                    out.created = applied.created
                    out.updated = applied.updated
                    out.deleted = applied.deleted
                    respond.succeed(out)
                case .failure(let error):
                    respond.fail(error)
                }
            }
        } catch { respond.fail(error) }
    }

    func push(_ body: ByteBuffer, _ respond: Responder) {
        do {
            let request = try decode(PBPushRequest.self, body)
            let target: PushTarget
            switch request.to {
            case .unspecified, .onlineAndOffline: target = .onlineAndOffline
            case .online: target = .online
            case .offline: target = .offline
            case .UNRECOGNIZED(let n): throw WireError(code: StatusCode.invalidArgument, message: "unknown push target \(n)")
            }
            let columns = try request.columns.map { try Column(wire: $0) }
            let prepared = try store.prepare(view: request.featureView, columns: columns, eventTimes: request.eventTimeUs,
                                             createdTimes: request.createdTimeUs, target: target)
            store.write(prepared) { result in
                switch result {
                case .success(let pushed):
                    var out = PBPushResponse()
                    out.rows = UInt64(pushed.rows)
                    out.onlineRowsWritten = UInt64(pushed.onlineRowsWritten)
                    out.onlineRowsStale = UInt64(pushed.onlineRowsStale)
                    out.offlineRowsWritten = UInt64(pushed.offlineRowsWritten)
                    respond.succeed(out)
                case .failure(let error):
                    respond.fail(error)
                }
            }
        } catch { respond.fail(error) }
    }

    /// GetOnlineFeatures as a connection calls it: `plans` is that
    /// connection's own cache of its last plan, `held` the read transaction
    /// of its current burst of requests (nil: one of the lookup's own).
    func getOnlineFeatures(_ body: ByteBuffer, plans: ConnectionPlanCache, held: HeldRead? = nil, into out: inout ByteBuffer) throws {
        let request = try OnlineRequestDecoder.decode(body, known: plans.knownKey, reusing: &plans.entityColumns)
        let plan = try plans.plan(for: request, store: store)
        // Encode inside the lookup: the rows point into the memory map.
        try store.withRows(plan, entities: request.entities, held: held) { rows in
            OnlineResponseEncoder.encode(rows, templates: plans, compactTimes: request.compactEventTimes, into: &out)
        }
    }
}
