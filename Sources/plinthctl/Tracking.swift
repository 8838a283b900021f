// plinthctl experiments and plinthctl runs: experiment tracking from the
// command line — list, create, rename, delete and restore experiments;
// list, show and search runs with MLflow's filter grammar.
import ArgumentParser
import Foundation
import PlinthClient
import PlinthWire
import SwiftProtobuf

struct Experiments: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List and manage experiments.",
        subcommands: [List.self, Create.self, Show.self, Rename.self, Delete.self, Restore.self],
        defaultSubcommand: List.self)

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List experiments.")
        @Flag(help: "Include deleted experiments.") var all = false
        @OptionGroup var options: ConnectionOptions

        func run() throws {
            try reportingErrors {
                let c = try options.connect()
                let response = try c.call(Method.listExperiments, PBListExperimentsRequest.with { $0.view = all ? .all : .activeOnly },
                                          as: PBListExperimentsResponse.self)
                if options.json { return print(try response.jsonString()) }
                printTable(["id", "name", "state", "created", "tags"], response.experiments.map {
                    ["\($0.experimentID)", $0.name, $0.deleted ? "deleted" : "active", isoTime(millis: $0.createdMs), formatMap($0.tags)]
                })
            }
        }
    }

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an experiment.")
        @Argument(help: "The experiment's name.") var name: String
        @Option(name: .customLong("tag"), help: "A tag KEY=VALUE (repeatable).") var tags: [String] = []
        @OptionGroup var options: ConnectionOptions

        func run() throws {
            try reportingErrors {
                let c = try options.connect()
                let tagMap = try parsePairs(tags, what: "--tag")
                let e = try c.call(Method.createExperiment, PBCreateExperimentRequest.with { $0.name = name; $0.tags = tagMap },
                                   as: PBExperimentResponse.self).experiment
                if options.json { return print(try e.jsonString()) }
                print("created experiment \(e.experimentID) '\(e.name)'")
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one experiment (by id or name).")
        @Argument(help: "Experiment id or name.") var experiment: String
        @OptionGroup var options: ConnectionOptions

        func run() throws {
            try reportingErrors {
                let c = try options.connect()
                let e = try resolveExperiment(c, experiment)
                if options.json { return print(try e.jsonString()) }
                printTable(["field", "value"], [["id", "\(e.experimentID)"], ["name", e.name], ["state", e.deleted ? "deleted" : "active"],
                                                ["created", isoTime(millis: e.createdMs)], ["updated", isoTime(millis: e.updatedMs)],
                                                ["tags", formatMap(e.tags)]])
            }
        }
    }

    struct Rename: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Rename an experiment.")
        @Argument(help: "Experiment id or name.") var experiment: String
        @Argument(help: "The new name.") var newName: String
        @OptionGroup var options: ConnectionOptions

        func run() throws {
            try reportingErrors {
                let c = try options.connect()
                let id = try resolveExperiment(c, experiment).experimentID
                let e = try c.call(Method.renameExperiment, PBRenameExperimentRequest.with { $0.experimentID = id; $0.newName = newName },
                                   as: PBExperimentResponse.self).experiment
                if options.json { return print(try e.jsonString()) }
                print("experiment \(e.experimentID) is now '\(e.name)'")
            }
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete an experiment (soft: restore brings it back).")
        @Argument(help: "Experiment id or name.") var experiment: String
        @OptionGroup var options: ConnectionOptions

        func run() throws {
            try Experiments.change(experiment, Method.deleteExperiment, options) { e in
                "deleted experiment \(e.experimentID) '\(e.name)' (plinthctl experiments restore \(e.experimentID) brings it back)"
            }
        }
    }

    struct Restore: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Restore a deleted experiment.")
        @Argument(help: "Experiment id or name.") var experiment: String
        @OptionGroup var options: ConnectionOptions

        func run() throws {
            try Experiments.change(experiment, Method.restoreExperiment, options) { e in
                "restored experiment \(e.experimentID) '\(e.name)'"
            }
        }
    }

    /// Delete or restore: both take an experiment id and answer the experiment.
    static func change(_ experiment: String, _ method: String, _ options: ConnectionOptions,
                       _ describe: (PBExperiment) -> String) throws {
        try reportingErrors {
            let c = try options.connect()
            let id = try resolveExperiment(c, experiment).experimentID
            let e = try c.call(method, PBExperimentIdRequest.with { $0.experimentID = id }, as: PBExperimentResponse.self).experiment
            if options.json { return print(try e.jsonString()) }
            print(describe(e))
        }
    }
}

struct Runs: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List, show and search runs.",
        subcommands: [List.self, Show.self, Search.self],
        defaultSubcommand: List.self)

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List an experiment's runs, newest first.")
        @Option(help: "Experiment id or name.") var experiment: String
        @Option(help: "At most this many runs.") var maxResults: UInt32 = 100
        @OptionGroup var options: ConnectionOptions

        func run() throws {
            try reportingErrors {
                try search(options, experiment: experiment, filter: "", orderBy: [], maxResults: maxResults, pageToken: "")
            }
        }
    }

    struct Search: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Search runs with MLflow's filter grammar.",
            discussion: "Example: plinthctl runs search --experiment churn --filter \"metrics.auc > 0.8 and params.model = 'xgb'\" --order-by 'metrics.auc DESC'")
        @Option(help: "Experiment id or name (repeatable).") var experiment: [String]
        @Option(help: "Filter, e.g. \"metrics.auc > 0.8 and tags.team = 'growth'\".") var filter = ""
        @Option(help: "Order, e.g. 'metrics.auc DESC' (repeatable).") var orderBy: [String] = []
        @Option(help: "At most this many runs per page (default 1000).") var maxResults: UInt32 = 0
        @Option(help: "The next-page token a previous search printed.") var pageToken = ""
        @OptionGroup var options: ConnectionOptions

        func run() throws {
            try reportingErrors {
                try search(options, experiments: experiment, filter: filter, orderBy: orderBy, maxResults: maxResults, pageToken: pageToken)
            }
        }
    }

    static func search(_ options: ConnectionOptions, experiment: String? = nil, experiments: [String] = [], filter: String,
                       orderBy: [String], maxResults: UInt32, pageToken: String) throws {
        let c = try options.connect()
        let ids = try (experiment.map { [$0] } ?? experiments).map { try resolveExperiment(c, $0).experimentID }
        let response = try c.call(Method.searchRuns, PBSearchRunsRequest.with {
            $0.experimentIds = ids
            $0.filter = filter
            $0.orderBy = orderBy
            $0.maxResults = maxResults
            $0.pageToken = pageToken
        }, as: PBSearchRunsResponse.self)
        if options.json { return print(try response.jsonString()) }
        printTable(["run_id", "name", "status", "started", "metrics", "params"], response.runs.map { run in
            [run.runID, run.name, statusName(run.status), isoTime(millis: run.startTimeMs),
             run.metrics.map { "\($0.key)=\(formatNumber($0.value))" }.joined(separator: " "), formatMap(run.params)]
        })
        if !response.nextPageToken.isEmpty { print("next page: --page-token \(response.nextPageToken)") }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one run: params, latest metrics, tags, inputs, artifacts.")
        @Argument(help: "The run id.") var runId: String
        @OptionGroup var options: ConnectionOptions

        func run() throws {
            try reportingErrors {
                let c = try options.connect()
                let run = try c.call(Method.getRun, PBRunIdRequest.with { $0.runID = runId }, as: PBRunResponse.self).run
                let artifacts = try c.call(Method.listArtifacts, PBListArtifactsRequest.with { $0.runID = runId }, as: PBListArtifactsResponse.self)
                if options.json {
                    let runJSON = try JSONSerialization.jsonObject(with: Data(try run.jsonString().utf8))
                    let artifactsJSON = try JSONSerialization.jsonObject(with: Data(try artifacts.jsonString().utf8))
                    return try printJSON(["run": runJSON, "artifacts": artifactsJSON])
                }
                var rows: [[String]] = [["run_id", run.runID], ["name", run.name], ["experiment", "\(run.experimentID)"],
                                        ["status", statusName(run.status) + (run.deleted ? " (deleted)" : "")],
                                        ["started", isoTime(millis: run.startTimeMs)],
                                        ["ended", run.endTimeMs == 0 ? "-" : isoTime(millis: run.endTimeMs)]]
                if run.hasCodeVersion { rows.append(["code", run.codeVersion.gitCommit + (run.codeVersion.dirty ? " (dirty)" : "")]) }
                for (k, v) in run.params.sorted(by: { $0.key < $1.key }) { rows.append(["param \(k)", v]) }
                for m in run.metrics { rows.append(["metric \(m.key)", "\(formatNumber(m.value)) (step \(m.step))"]) }
                for (k, v) in run.tags.sorted(by: { $0.key < $1.key }) { rows.append(["tag \(k)", v]) }
                for d in run.inputs {
                    rows.append(["input \(d.name)", "digest \(d.digest), \(d.featureVersions.count) features, as of \(isoTime(millis: d.asOfMs))"])
                }
                for a in artifacts.artifacts { rows.append(["artifact \(a.path)", "\(a.size) bytes sha256:\(a.digest.prefix(12))"]) }
                printTable(["field", "value"], rows)
            }
        }
    }
}

/// An experiment by id (all digits) or by name.
func resolveExperiment(_ c: Connection, _ text: String) throws -> PBExperiment {
    try c.call(Method.getExperiment, PBGetExperimentRequest.with {
        if let id = UInt64(text) { $0.experimentID = id } else { $0.name = text }
    }, as: PBExperimentResponse.self).experiment
}

func statusName(_ status: PBRunStatus) -> String {
    switch status {
    case .running: "RUNNING"
    case .finished: "FINISHED"
    case .failed: "FAILED"
    case .killed: "KILLED"
    default: "UNKNOWN"
    }
}

func isoTime(millis: Int64) -> String { millis == 0 ? "-" : isoTime(micros: millis * 1000) }

func formatMap(_ map: [String: String]) -> String {
    map.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
}

func formatNumber(_ value: Double) -> String {
    value.isNaN ? "NaN" : (value.isInfinite ? (value > 0 ? "inf" : "-inf") : "\(value)")
}

/// Parses KEY=VALUE arguments.
func parsePairs(_ pairs: [String], what: String) throws -> [String: String] {
    var out: [String: String] = [:]
    for pair in pairs {
        guard let eq = pair.firstIndex(of: "=") else { throw ValidationError("\(what) '\(pair)' must be KEY=VALUE") }
        out[String(pair[..<eq])] = String(pair[pair.index(after: eq)...])
    }
    return out
}
