// plinthctl models: the model registry from the command line — models and
// versions, aliases (set, delete, resolve), the governance policy, lineage
// and the audit of alias changes.
import ArgumentParser
import Foundation
import PlinthClient
import PlinthInference
import PlinthRegistry
import PlinthWire
import SwiftProtobuf

struct Models: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List registered models and manage versions, aliases and policies.",
        subcommands: [List.self, Show.self, Versions.self, Register.self, Alias.self, Policy.self, Lineage.self, Audit.self],
        defaultSubcommand: List.self)

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List registered models.")
        @OptionGroup var options: ConnectionOptions

        func run() throws {
            try reportingErrors {
                let c = try options.connect()
                let response = try c.call(Method.listRegisteredModels, PBListRegisteredModelsRequest(), as: PBListRegisteredModelsResponse.self)
                if options.json { return print(try response.jsonString()) }
                printTable(["name", "latest", "aliases", "policy", "description"], response.models.map { m in
                    [m.name, "\(m.latestVersion)", formatAliases(m.aliases), m.hasPolicy_p ? "yes" : "default", m.description_p]
                })
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a model (NAME), or one version (NAME@ALIAS, NAME/VERSION).")
        @Argument(help: "NAME for the model itself; NAME@ALIAS or NAME/VERSION (or NAME:VERSION) for a version.") var reference: String
        @OptionGroup var options: ConnectionOptions

        func run() throws {
            try reportingErrors {
                let c = try options.connect()
                // Here a bare NAME names the model, not a version: the model's
                // record lists its aliases, production's version among them.
                if !reference.contains(where: { $0 == "@" || $0 == "/" || $0 == ":" }) {
                    let name = reference
                    let m = try c.call(Method.getRegisteredModel, PBGetRegisteredModelRequest.with { $0.name = name }, as: PBRegisteredModelResponse.self).model
                    if options.json { return print(try m.jsonString()) }
                    var rows = [["name", m.name], ["description", m.description_p], ["latest version", "\(m.latestVersion)"],
                                ["aliases", formatAliases(m.aliases)], ["tags", formatMap(m.tags)]]
                    for (k, v) in m.card.sorted(by: { $0.key < $1.key }) { rows.append(["card \(k)", v]) }
                    rows.append(["policy", m.hasPolicy_p ? describe(m.policy) : "default (production protected, no checks)"])
                    return printTable(["field", "value"], rows)
                }
                let (name, version, alias) = try versionFields(reference)
                let v = try c.call(Method.getModelVersion, PBGetModelVersionRequest.with {
                    $0.model = name; $0.version = version; $0.alias = alias
                }, as: PBModelVersionResponse.self).version
                if options.json { return print(try v.jsonString()) }
                printTable(["field", "value"], versionRows(v))
            }
        }
    }

    struct Versions: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a model's versions.")
        @Argument(help: "The model name.") var name: String
        @OptionGroup var options: ConnectionOptions

        func run() throws {
            try reportingErrors {
                let c = try options.connect()
                let response = try c.call(Method.listModelVersions, PBListModelVersionsRequest.with { $0.model = name }, as: PBListModelVersionsResponse.self)
                if options.json { return print(try response.jsonString()) }
                printTable(["version", "aliases", "run", "format", "created", "metrics"], response.versions.map { v in
                    ["\(v.version)", v.aliases.joined(separator: ","), v.runID.isEmpty ? "-" : v.runID, v.artifactFormat,
                     isoTime(millis: v.createdMs), v.metrics.sorted { $0.key < $1.key }.map { "\($0.key)=\(formatNumber($0.value))" }.joined(separator: " ")]
                })
            }
        }
    }

    struct Register: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Upload a model file and register it as the next version of a model, with its signature.",
            discussion: """
            plinthctl models register fraud --file model.json --service fraud_v1 --request-field amount:float64 \\
                --default user_stats:txn_count_7d=0 --alias production --reason "first model"
            The signature is what serving uses: the features (--features and/or --service), the request-time
            fields the caller sends, and optional defaults for missing inputs. See docs/concepts/serving.md.
            """)
        @Argument(help: "The model name (created when new).") var name: String
        @Option(help: "The model file (XGBoost JSON/UBJSON, LightGBM text, Plinth JSON or binary).") var file: String
        @Option(help: "The artifact format recorded (default: from the file's contents).") var format: String?
        @Option(help: "Feature references view:feature, comma-separated, in model input order.") var features: String?
        @Option(help: "A feature service whose features are inputs (after --features).") var service: String?
        @Option(name: .customLong("request-field"), help: "A request-time input NAME:TYPE (int64, float32, float64, bool); repeatable.")
        var requestFields: [String] = []
        @Option(name: .customLong("output"), help: "An output NAME:TYPE; repeatable.") var outputs: [String] = []
        @Option(name: .customLong("default"), help: "INPUT=VALUE used when the input is missing; repeatable.") var defaults: [String] = []
        @Option(name: .customLong("run"), help: "The run the model came from (copies its metrics and datasets).") var runID: String?
        @Option(help: "A description of the version.") var description = ""
        @Option(help: "Point this alias at the new version (in the same commit; a refused alias registers nothing).") var alias: String?
        @Option(help: "Why (kept in the audit with --alias).") var reason = ""
        @OptionGroup var options: ConnectionOptions

        func run() throws {
            try reportingErrors {
                var signature = PBModelSignature()
                signature.featureReferences = features.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } } ?? []
                signature.featureService = service ?? ""
                signature.requestFields = try requestFields.map(parseField)
                signature.outputs = try outputs.map(parseField)
                for text in defaults {
                    guard let eq = text.lastIndex(of: "="), let value = Double(text[text.index(after: eq)...]) else {
                        throw ValidationError("--default '\(text)' must look like INPUT=NUMBER")
                    }
                    signature.defaults[String(text[..<eq])] = value
                }
                let data: Data
                do { data = try Data(contentsOf: URL(fileURLWithPath: file)) } catch {
                    throw ValidationError("cannot read \(file): \(error.localizedDescription)")
                }
                // What the importer does that a user comparing with the
                // library should know ("using 57 of 100 trees" for a
                // scikit-learn wrapper's file after early stopping) is kept
                // with the version, so `models show` can say it. A file
                // Plinth cannot read registers as before: serving reports it.
                let note = (try? ModelLoader.load(data: [UInt8](data)))?.note
                let c = try options.connect()
                let digest = try uploadBlob(c, data)
                let version = try c.call(Method.createModelVersion, PBCreateModelVersionRequest.with {
                    $0.model = name
                    $0.description_p = description
                    $0.runID = runID ?? ""
                    $0.artifactDigest = digest
                    $0.artifactFormat = format ?? detectFormat(data)
                    $0.signature = signature
                    if let note { $0.tags[modelNoteTag] = note }
                    // The alias is set in the same request: one commit, and a
                    // refused (protected) alias registers nothing.
                    if let alias { $0.aliases = [alias]; $0.reason = reason }
                }, as: PBModelVersionResponse.self).version
                var change: PBAliasChange?
                if let alias, !options.json {
                    // The response is the version; the change (from which
                    // version, by whom) is the audit's latest entry for it.
                    change = try c.call(Method.getAliasAudit, PBGetAliasAuditRequest.with { $0.model = name },
                                        as: PBGetAliasAuditResponse.self)
                        .changes.last { $0.alias == alias && $0.toVersion == version.version }
                }
                if options.json { return print(try version.jsonString()) }
                printTable(["field", "value"], versionRows(version))
                if let change { print(describe(change)) }
            }
        }

        private func parseField(_ text: String) throws -> PBSignatureField {
            let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw ValidationError("'\(text)' must look like NAME:TYPE, e.g. amount:float64")
            }
            return PBSignatureField.with { $0.name = parts[0]; $0.type = parts[1] }
        }

        /// The registry's format names, from the first bytes.
        private func detectFormat(_ data: Data) -> String {
            if data.starts(with: Array("PLNTIR01".utf8)) { return "plinth-binary" }
            if data.starts(with: Array("tree".utf8)) { return "lightgbm-text" }
            if data.first == UInt8(ascii: "{") {
                return data.prefix(4096).range(of: Data("\"plinth_model\"".utf8)) != nil ? "plinth-json" : "xgboost-json"
            }
            return "xgboost-ubjson"
        }
    }

    struct Alias: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Resolve, set or delete an alias.",
            discussion: """
            plinthctl models alias churn production              resolves churn@production
            plinthctl models alias churn production 3 --reason "Q3 launch"
            plinthctl models alias churn production --delete --reason "rollback"
            Setting a protected alias (production unless the policy says otherwise) runs the model's policy.
            """)
        @Argument(help: "The model name.") var name: String
        @Argument(help: "The alias.") var alias: String
        @Argument(help: "Point the alias at this version.") var version: UInt64?
        @Flag(help: "Delete the alias.") var delete = false
        @Option(help: "Why (kept in the audit).") var reason = ""
        @OptionGroup var options: ConnectionOptions

        func validate() throws {
            if delete && version != nil { throw ValidationError("give a version or --delete, not both") }
        }

        func run() throws {
            try reportingErrors {
                let c = try options.connect()
                if version == nil && !delete {
                    let v = try c.call(Method.getModelVersion, PBGetModelVersionRequest.with { $0.model = name; $0.alias = alias },
                                       as: PBModelVersionResponse.self).version
                    if options.json { return print(try v.jsonString()) }
                    return printTable(["field", "value"], versionRows(v))
                }
                let change: PBAliasChange
                if let version {
                    change = try c.call(Method.setModelAlias, PBSetModelAliasRequest.with {
                        $0.model = name; $0.alias = alias; $0.version = version; $0.reason = reason
                    }, as: PBAliasChangeResponse.self).change
                } else {
                    change = try c.call(Method.deleteModelAlias, PBDeleteModelAliasRequest.with {
                        $0.model = name; $0.alias = alias; $0.reason = reason
                    }, as: PBAliasChangeResponse.self).change
                }
                if options.json { return print(try change.jsonString()) }
                print(describe(change))
            }
        }
    }

    struct Policy: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show, set, clear or check a model's governance policy.",
            discussion: """
            plinthctl models policy churn                                    shows it
            plinthctl models policy churn --threshold 'auc >= 0.85' --require-card owner --require-card 'intended use' --require-lineage
            plinthctl models policy churn --check 3                          lists every check version 3 fails
            plinthctl models policy churn --clear                            back to the default
            """)
        @Argument(help: "The model name.") var name: String
        @Option(help: "A metric threshold such as 'auc >= 0.85' (repeatable).") var threshold: [String] = []
        @Option(help: "A required model-card field: description, owner, intended_use, limitations, ... (repeatable).") var requireCard: [String] = []
        @Flag(help: "Require lineage: a source run with an input dataset of known features.") var requireLineage = false
        @Option(help: "An alias the policy protects (repeatable; default production).") var protect: [String] = []
        @Flag(help: "Remove the policy.") var clear = false
        @Option(help: "Run the policy against this version; change nothing.") var check: UInt64?
        @OptionGroup var options: ConnectionOptions

        var setting: Bool { !threshold.isEmpty || !requireCard.isEmpty || requireLineage || !protect.isEmpty }

        func validate() throws {
            if [setting, clear, check != nil].filter({ $0 }).count > 1 {
                throw ValidationError("setting, --clear and --check go one at a time")
            }
        }

        func run() throws {
            try reportingErrors {
                let c = try options.connect()
                if let check {
                    let result = try c.call(Method.checkModelPolicy, PBCheckModelPolicyRequest.with { $0.model = name; $0.version = check },
                                            as: PBCheckModelPolicyResponse.self)
                    if options.json { return print(try result.jsonString()) }
                    if result.failures.isEmpty { return print("version \(check) passes the policy of '\(name)'") }
                    print("version \(check) fails \(result.failures.count) check\(result.failures.count == 1 ? "" : "s"):")
                    for failure in result.failures { print("  - \(failure)") }
                    throw ExitCode(1)
                }
                let model: PBRegisteredModel
                if setting || clear {
                    var request = PBSetModelPolicyRequest()
                    request.model = name
                    if setting {
                        request.policy.metricThresholds = try threshold.map(parseThreshold)
                        request.policy.requiredCardFields = requireCard
                        request.policy.requireLineage = requireLineage
                        request.policy.protectedAliases = protect
                    }
                    model = try c.call(Method.setModelPolicy, request, as: PBRegisteredModelResponse.self).model
                } else {
                    model = try c.call(Method.getRegisteredModel, PBGetRegisteredModelRequest.with { $0.name = name }, as: PBRegisteredModelResponse.self).model
                }
                if options.json { return print(try model.policy.jsonString()) }
                print("\(name): \(model.hasPolicy_p ? describe(model.policy) : "default policy (production protected, no checks)")")
            }
        }
    }

    struct Lineage: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Trace a version to its run, datasets and feature definition versions.")
        @Argument(help: "NAME@ALIAS, NAME/VERSION (or NAME:VERSION), or NAME for NAME@production.") var reference: String
        @OptionGroup var options: ConnectionOptions

        func run() throws {
            try reportingErrors {
                let c = try options.connect()
                let (name, version, alias) = try versionFields(reference)
                let lineage = try c.call(Method.getModelLineage, PBGetModelLineageRequest.with {
                    $0.model = name; $0.version = version; $0.alias = alias
                }, as: PBGetModelLineageResponse.self)
                if options.json { return print(try lineage.jsonString()) }
                let v = lineage.version
                print("\(v.model) version \(v.version)\(v.aliases.isEmpty ? "" : " (\(v.aliases.joined(separator: ", ")))")  artifact sha256:\(v.artifactDigest) \(v.artifactFormat)")
                if lineage.hasRun {
                    let run = lineage.run
                    let code = run.hasCodeVersion ? "  code \(run.codeVersion.gitCommit)\(run.codeVersion.dirty ? " (dirty)" : "")" : ""
                    print("└─ run \(run.runID) '\(run.name)' in experiment \(run.experimentID), \(statusName(run.status))\(code)")
                } else {
                    print("└─ no source run\(v.runID.isEmpty ? "" : " (run \(v.runID) is gone)")")
                }
                for d in lineage.datasets {
                    print("   └─ dataset '\(d.name)' (\(d.context)) spine digest \(d.digest), as of \(isoTime(millis: d.asOfMs))")
                    for f in d.featureVersions {
                        print("      └─ \(f.reference): " + (f.project.isEmpty ? "not in the feature catalog"
                              : "project \(f.project) definitions v\(f.projectVersion), view schema v\(f.schemaVersion)"))
                    }
                }
            }
        }
    }

    struct Audit: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every alias change of a model: who, when, from, to, why.")
        @Argument(help: "The model name.") var name: String
        @OptionGroup var options: ConnectionOptions

        func run() throws {
            try reportingErrors {
                let c = try options.connect()
                let audit = try c.call(Method.getAliasAudit, PBGetAliasAuditRequest.with { $0.model = name }, as: PBGetAliasAuditResponse.self)
                if options.json { return print(try audit.jsonString()) }
                printTable(["when", "who", "alias", "from", "to", "checked", "reason"], audit.changes.map { e in
                    [isoTime(millis: e.atMs), e.who, e.alias, e.fromVersion == 0 ? "-" : "\(e.fromVersion)",
                     e.toVersion == 0 ? "(deleted)" : "\(e.toVersion)", e.checked ? "policy" : "", e.reason]
                })
            }
        }
    }
}

/// A version reference typed on the command line, as the (model, version,
/// alias) fields of a registry request. PlinthRegistry's ModelReference
/// parses it, as the daemon does: NAME@ALIAS, NAME/VERSION, NAME:VERSION,
/// or a bare NAME for NAME@production.
func versionFields(_ text: String) throws -> (model: String, version: UInt64, alias: String) {
    let reference: ModelReference
    do { reference = try ModelReference(parsing: text) } catch { throw ValidationError(error.description) }
    switch reference.selector {
    case .alias(let alias): return (reference.name, 0, alias)
    case .version(let version): return (reference.name, version, "")
    }
}

/// Uploads `data` as a blob with no run (a model file) in 1 MiB chunks;
/// returns its sha256.
func uploadBlob(_ c: Connection, _ data: Data) throws -> String {
    let chunk = 1 << 20
    var uploadID = ""
    var offset = data.startIndex
    repeat {
        let end = min(data.endIndex, offset + chunk)
        let response = try c.call(Method.uploadArtifact, PBUploadArtifactRequest.with {
            $0.uploadID = uploadID
            $0.data = data[offset..<end]
            $0.finish = end == data.endIndex
        }, as: PBUploadArtifactResponse.self)
        uploadID = response.uploadID
        offset = end
        if response.hasArtifact { return response.artifact.digest }
    } while offset < data.endIndex
    throw ValidationError("the server finished the upload without naming the stored blob")
}

func parseThreshold(_ text: String) throws -> PBMetricThreshold {
    for symbol in [">=", "<=", "==", "!=", ">", "<", "="] {
        guard let range = text.range(of: symbol) else { continue }
        let metric = text[..<range.lowerBound].trimmingCharacters(in: .whitespaces)
        guard !metric.isEmpty, let value = Double(text[range.upperBound...].trimmingCharacters(in: .whitespaces)) else { break }
        return PBMetricThreshold.with { $0.metric = metric; $0.comparison = symbol == "=" ? "==" : symbol; $0.value = value }
    }
    throw ValidationError("threshold '\(text)' must look like 'auc >= 0.85'")
}

func formatAliases(_ aliases: [String: UInt64]) -> String {
    aliases.sorted { $0.key < $1.key }.map { "\($0.key)->\($0.value)" }.joined(separator: " ")
}

func describe(_ policy: PBModelPolicy) -> String {
    var parts = policy.metricThresholds.map { "\($0.metric) \($0.comparison) \(formatNumber($0.value))" }
    if !policy.requiredCardFields.isEmpty { parts.append("card: " + policy.requiredCardFields.joined(separator: ", ")) }
    if policy.requireLineage { parts.append("lineage required") }
    return parts.joined(separator: "; ") + " (protects \(policy.protectedAliases.joined(separator: ", ")))"
}

func describe(_ change: PBAliasChange) -> String {
    let from = change.fromVersion == 0 ? "unset" : "version \(change.fromVersion)"
    let to = change.toVersion == 0 ? "deleted" : "version \(change.toVersion)"
    return "\(change.model)@\(change.alias): \(from) -> \(to) by \(change.who)\(change.checked ? " (policy passed)" : "")"
}

/// The version tag holding the model's import note (`Model.note`), set by
/// `models register` and shown by `models show` as its own row.
let modelNoteTag = "plinth.model_note"

func versionRows(_ v: PBModelVersion) -> [[String]] {
    var rows = [["model", v.model], ["version", "\(v.version)"], ["aliases", v.aliases.joined(separator: ", ")],
                ["run", v.runID.isEmpty ? "-" : v.runID], ["artifact", "sha256:\(v.artifactDigest) (\(v.artifactFormat))"],
                ["created", isoTime(millis: v.createdMs)], ["description", v.description_p]]
    let s = v.signature
    if !s.featureReferences.isEmpty { rows.append(["features", s.featureReferences.joined(separator: ", ")]) }
    if !s.featureService.isEmpty { rows.append(["feature service", s.featureService]) }
    if !s.requestFields.isEmpty { rows.append(["request fields", s.requestFields.map { "\($0.name): \($0.type)" }.joined(separator: ", ")]) }
    if !s.outputs.isEmpty { rows.append(["outputs", s.outputs.map { "\($0.name): \($0.type)" }.joined(separator: ", ")]) }
    if !s.defaults.isEmpty {
        rows.append(["defaults", s.defaults.sorted { $0.key < $1.key }.map { "\($0.key)=\(formatNumber($0.value))" }.joined(separator: ", ")])
    }
    for (k, m) in v.metrics.sorted(by: { $0.key < $1.key }) { rows.append(["metric \(k)", formatNumber(m)]) }
    if let note = v.tags[modelNoteTag] { rows.append(["note", note]) }
    for (k, t) in v.tags.sorted(by: { $0.key < $1.key }) where k != modelNoteTag { rows.append(["tag \(k)", t]) }
    return rows
}
