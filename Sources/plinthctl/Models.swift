// plinthctl models: the model registry from the command line — models and
// versions, aliases (set, delete, resolve), the governance policy, lineage
// and the audit of alias changes.
import ArgumentParser
import Foundation
import PlinthClient
import PlinthWire
import SwiftProtobuf

struct Models: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List registered models and manage versions, aliases and policies.",
        subcommands: [List.self, Show.self, Versions.self, Alias.self, Policy.self, Lineage.self, Audit.self],
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
        static let configuration = CommandConfiguration(abstract: "Show a model, or one version: NAME, NAME/VERSION or NAME@ALIAS.")
        @Argument(help: "NAME, NAME/VERSION or NAME@ALIAS.") var reference: String
        @OptionGroup var options: ConnectionOptions

        func run() throws {
            try reportingErrors {
                let c = try options.connect()
                let (name, version, alias) = try parseReference(reference)
                if version == 0 && alias.isEmpty {
                    let m = try c.call(Method.getRegisteredModel, PBGetRegisteredModelRequest.with { $0.name = name }, as: PBRegisteredModelResponse.self).model
                    if options.json { return print(try m.jsonString()) }
                    var rows = [["name", m.name], ["description", m.description_p], ["latest version", "\(m.latestVersion)"],
                                ["aliases", formatAliases(m.aliases)], ["tags", formatMap(m.tags)]]
                    for (k, v) in m.card.sorted(by: { $0.key < $1.key }) { rows.append(["card \(k)", v]) }
                    rows.append(["policy", m.hasPolicy_p ? describe(m.policy) : "default (production protected, no checks)"])
                    return printTable(["field", "value"], rows)
                }
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
        @Argument(help: "NAME, NAME/VERSION or NAME@ALIAS.") var reference: String
        @OptionGroup var options: ConnectionOptions

        func run() throws {
            try reportingErrors {
                let c = try options.connect()
                let (name, version, alias) = try parseReference(reference)
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

/// Splits NAME, NAME/VERSION or NAME@ALIAS.
func parseReference(_ text: String) throws -> (String, UInt64, String) {
    if let at = text.lastIndex(of: "@") { return (String(text[..<at]), 0, String(text[text.index(after: at)...])) }
    if let slash = text.lastIndex(of: "/") {
        guard let version = UInt64(text[text.index(after: slash)...]) else {
            throw ValidationError("'\(text)': the part after '/' must be a version number")
        }
        return (String(text[..<slash]), version, "")
    }
    return (text, 0, "")
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

func versionRows(_ v: PBModelVersion) -> [[String]] {
    var rows = [["model", v.model], ["version", "\(v.version)"], ["aliases", v.aliases.joined(separator: ", ")],
                ["run", v.runID.isEmpty ? "-" : v.runID], ["artifact", "sha256:\(v.artifactDigest) (\(v.artifactFormat))"],
                ["created", isoTime(millis: v.createdMs)], ["description", v.description_p]]
    let s = v.signature
    if !s.featureReferences.isEmpty { rows.append(["features", s.featureReferences.joined(separator: ", ")]) }
    if !s.featureService.isEmpty { rows.append(["feature service", s.featureService]) }
    if !s.requestFields.isEmpty { rows.append(["request fields", s.requestFields.map { "\($0.name): \($0.type)" }.joined(separator: ", ")]) }
    if !s.outputs.isEmpty { rows.append(["outputs", s.outputs.map { "\($0.name): \($0.type)" }.joined(separator: ", ")]) }
    for (k, m) in v.metrics.sorted(by: { $0.key < $1.key }) { rows.append(["metric \(k)", formatNumber(m)]) }
    for (k, t) in v.tags.sorted(by: { $0.key < $1.key }) { rows.append(["tag \(k)", t]) }
    return rows
}
