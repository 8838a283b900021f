// plinthctl: the Plinth command line — definitions, pushes, online reads,
// predictions and batch scoring, daemon status, experiments, runs and
// registered models.
import ArgumentParser

struct Plinthctl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plinthctl",
        abstract: "Command line for the Plinth daemon.",
        version: plinthctlVersion,
        subcommands: [Apply.self, Push.self, Get.self, Status.self, Definitions.self, Score.self,
                      Historical.self, Materialize.self, MaterializeIncremental.self, SkewCheck.self,
                      Predict.self, ScoreBatch.self,
                      Experiments.self, Runs.self, Models.self])
}

Plinthctl.main()
