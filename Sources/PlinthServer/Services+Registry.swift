// Services+Registry: the Registry service's methods — models, versions,
// aliases, policies, lineage and the audit — mapped onto PlinthRegistry.
// This is where the registry meets tracking and the feature catalog: a new
// version copies its run's metrics and datasets (PlinthRegistry depends on
// storage only), and lineage follows version -> run -> datasets -> feature
// definition versions. Alias changes are attributed to the connection's
// token name.
import Foundation
import NIOCore
import PlinthFeatures
import PlinthRegistry
import PlinthServing
import PlinthTracking
import PlinthWire
import SwiftProtobuf

extension Services {
    static let registryMethods: [String: MethodHandler] = [
        Method.createRegisteredModel: MethodHandler { s, body, respond in
            s.later(respond) {
                let r = try decode(PBCreateRegisteredModelRequest.self, body)
                let model = try await s.registry.createModel(name: r.name, description: r.description_p, card: r.card, tags: r.tags)
                return PBRegisteredModelResponse.with { $0.model = model.wire }
            }
        },
        Method.updateRegisteredModel: MethodHandler { s, body, respond in
            s.later(respond) {
                let r = try decode(PBUpdateRegisteredModelRequest.self, body)
                let model = try await s.registry.updateModel(name: r.name, description: r.setDescription ? r.description_p : nil,
                                                             card: r.card, tags: r.tags)
                return PBRegisteredModelResponse.with { $0.model = model.wire }
            }
        },
        Method.getRegisteredModel: MethodHandler { s, body, respond in
            s.now(respond) {
                let r = try decode(PBGetRegisteredModelRequest.self, body)
                return try PBRegisteredModelResponse.with { $0.model = try s.registry.model(named: r.name).wire }
            }
        },
        Method.listRegisteredModels: MethodHandler { s, _, respond in
            s.now(respond) { try PBListRegisteredModelsResponse.with { $0.models = try s.registry.listModels().map(\.wire) } }
        },
        Method.createModelVersion: MethodHandler { s, body, respond in
            // Register is a hot path too: decoded and checked here, answered
            // from the writer's completion after the durable commit, with no
            // task in between (as LogBatch).
            do {
                let r = try decode(PBCreateModelVersionRequest.self, body)
                guard FileManager.default.fileExists(atPath: s.artifacts.blobPath(r.artifactDigest)) || r.artifactDigest.utf8.count != 64 else {
                    throw RegistryError.notFound("no blob has digest '\(r.artifactDigest)': upload the model file first (UploadArtifact)")
                }
                var source: VersionSource?
                if !r.runID.isEmpty {
                    let record = try s.tracking.run(id: r.runID)
                    let resolved = record.run.inputs.flatMap(\.featureVersions).filter { !$0.project.isEmpty }.count
                    source = VersionSource(runId: record.run.id, experimentId: record.run.experimentId,
                                           metrics: record.metrics.mapValues(\.value), datasetDigests: record.run.inputs.map(\.digest),
                                           resolvedFeatures: resolved)
                }
                // The version and its aliases (with their audit entries) in
                // one commit: one durable write, not two.
                let model = r.model
                let aliased = !r.aliases.isEmpty
                s.registry.createVersion(NewVersion(
                    model: r.model, description: r.description_p, source: source, artifactDigest: r.artifactDigest,
                    artifactFormat: r.artifactFormat, signature: Signature(wire: r.signature), tags: r.tags),
                    aliases: r.aliases, who: respond.who, reason: r.reason) { result in
                    switch result {
                    case .success(let version):
                        if aliased { s.serving.aliasesChanged(model: model) }
                        respond.succeed(PBModelVersionResponse.with { $0.version = version.wire })
                    case .failure(let error): respond.fail(error)
                    }
                }
            } catch { respond.fail(error) }
        },
        Method.getModelVersion: MethodHandler { s, body, respond in
            s.now(respond) {
                let r = try decode(PBGetModelVersionRequest.self, body)
                return try PBModelVersionResponse.with { $0.version = try s.resolveVersion(r.model, version: r.version, alias: r.alias).wire }
            }
        },
        Method.listModelVersions: MethodHandler { s, body, respond in
            s.now(respond) {
                let r = try decode(PBListModelVersionsRequest.self, body)
                return try PBListModelVersionsResponse.with { $0.versions = try s.registry.versions(model: r.model).map(\.wire) }
            }
        },
        Method.setModelAlias: MethodHandler { s, body, respond in
            s.later(respond) {
                let r = try decode(PBSetModelAliasRequest.self, body)
                let event = try await s.registry.setAlias(model: r.model, alias: r.alias, version: r.version,
                                                          who: respond.who, reason: r.reason)
                s.serving.aliasesChanged(model: r.model)
                return PBAliasChangeResponse.with { $0.change = event.wire }
            }
        },
        Method.deleteModelAlias: MethodHandler { s, body, respond in
            s.later(respond) {
                let r = try decode(PBDeleteModelAliasRequest.self, body)
                let event = try await s.registry.deleteAlias(model: r.model, alias: r.alias, who: respond.who, reason: r.reason)
                s.serving.aliasesChanged(model: r.model)
                return PBAliasChangeResponse.with { $0.change = event.wire }
            }
        },
        Method.setModelPolicy: MethodHandler { s, body, respond in
            s.later(respond) {
                let r = try decode(PBSetModelPolicyRequest.self, body)
                let policy = r.hasPolicy ? try Policy(wire: r.policy) : nil
                let model = try await s.registry.setPolicy(name: r.model, policy: policy)
                return PBRegisteredModelResponse.with { $0.model = model.wire }
            }
        },
        Method.checkModelPolicy: MethodHandler { s, body, respond in
            s.now(respond) {
                let r = try decode(PBCheckModelPolicyRequest.self, body)
                return try PBCheckModelPolicyResponse.with { $0.failures = try s.registry.check(model: r.model, version: r.version) }
            }
        },
        Method.getModelLineage: MethodHandler { s, body, respond in
            s.now(respond) {
                let r = try decode(PBGetModelLineageRequest.self, body)
                let version = try s.resolveVersion(r.model, version: r.version, alias: r.alias)
                var out = PBGetModelLineageResponse()
                out.version = version.wire
                if let runId = version.source?.runId, let record = try? s.tracking.run(id: runId) {
                    out.run = record.wire
                    out.datasets = record.run.inputs.map(\.wire)
                }
                let snapshot = s.catalog.snapshot
                var references = version.signature.featureReferences
                if let service = snapshot.services[version.signature.featureService] {
                    for reference in service.features where !references.contains(reference) { references.append(reference) }
                }
                out.signatureFeatures = references.map { s.featureVersion($0, snapshot).wire }
                return out
            }
        },
        Method.getAliasAudit: MethodHandler { s, body, respond in
            s.now(respond) {
                let r = try decode(PBGetAliasAuditRequest.self, body)
                return try PBGetAliasAuditResponse.with { $0.changes = try s.registry.auditLog(model: r.model).map(\.wire) }
            }
        },
    ]

    /// A version by number or by alias; with neither, `model` is a whole
    /// reference, and a bare name means `production`, as in Predict.
    func resolveVersion(_ model: String, version: UInt64, alias: String) throws -> ModelVersion {
        try registry.resolve(ModelReference(model: model, version: version, alias: alias))
    }
}

extension Responder {
    /// Who an audited change is attributed to.
    var who: String { caller.isEmpty ? "anonymous" : caller }
}

// MARK: Wire mapping

extension Signature {
    init(wire: PBModelSignature) {
        self.init(featureReferences: wire.featureReferences, featureService: wire.featureService,
                  requestFields: wire.requestFields.map { SignatureField(name: $0.name, type: $0.type) },
                  outputs: wire.outputs.map { SignatureField(name: $0.name, type: $0.type) },
                  defaults: wire.defaults)
    }

    var wire: PBModelSignature {
        PBModelSignature.with {
            $0.featureReferences = featureReferences
            $0.featureService = featureService
            $0.requestFields = requestFields.map { f in PBSignatureField.with { $0.name = f.name; $0.type = f.type } }
            $0.outputs = outputs.map { f in PBSignatureField.with { $0.name = f.name; $0.type = f.type } }
            $0.defaults = defaults
        }
    }
}

extension Policy {
    init(wire: PBModelPolicy) throws {
        let thresholds = try wire.metricThresholds.map { t -> MetricThreshold in
            guard let comparison = MetricThreshold.Comparison(rawValue: t.comparison == "=" ? "==" : t.comparison) else {
                throw RegistryError.invalidArgument("threshold on '\(t.metric)' has comparison '\(t.comparison)'; use >=, >, <=, <, == or !=")
            }
            return MetricThreshold(metric: t.metric, comparison: comparison, value: t.value)
        }
        self.init(metricThresholds: thresholds, requiredCardFields: wire.requiredCardFields.map(RegisteredModel.cardKey),
                  requireLineage: wire.requireLineage,
                  protectedAliases: wire.protectedAliases.isEmpty ? ["production"] : wire.protectedAliases)
    }

    var wire: PBModelPolicy {
        PBModelPolicy.with {
            $0.metricThresholds = metricThresholds.map { t in
                PBMetricThreshold.with { $0.metric = t.metric; $0.comparison = t.comparison.rawValue; $0.value = t.value }
            }
            $0.requiredCardFields = requiredCardFields
            $0.requireLineage = requireLineage
            $0.protectedAliases = protectedAliases
        }
    }
}

extension RegisteredModel {
    var wire: PBRegisteredModel {
        PBRegisteredModel.with {
            $0.name = name
            $0.description_p = description
            $0.card = card
            $0.tags = tags
            $0.createdMs = createdMs
            $0.updatedMs = updatedMs
            $0.latestVersion = latestVersion
            $0.aliases = aliases
            $0.hasPolicy_p = policy != nil
            $0.policy = effectivePolicy.wire
        }
    }
}

extension ModelVersion {
    var wire: PBModelVersion {
        PBModelVersion.with {
            $0.model = model
            $0.version = version
            $0.description_p = description
            $0.runID = source?.runId ?? ""
            $0.experimentID = source?.experimentId ?? 0
            $0.artifactDigest = artifactDigest
            $0.artifactFormat = artifactFormat
            $0.signature = signature.wire
            $0.metrics = source?.metrics ?? [:]
            $0.tags = tags
            $0.createdMs = createdMs
            $0.aliases = aliases
            $0.datasetDigests = source?.datasetDigests ?? []
        }
    }
}

extension AliasEvent {
    var wire: PBAliasChange {
        PBAliasChange.with {
            $0.model = model
            $0.alias = alias
            $0.fromVersion = fromVersion
            $0.toVersion = toVersion
            $0.who = who
            $0.atMs = atMs
            $0.reason = reason
            $0.checked = checked
        }
    }
}
