// Services+Offline: the Features service's offline-face methods —
// historical retrieval (streamed in chunks of rows), dataset records and
// materialisation (streamed progress) — mapped onto PlinthFeatures'
// OfflineStore.
//
// These run for seconds, not microseconds, so they leave the event loop:
// the work runs on a global dispatch queue and answers through the
// Responder, which may be called from any thread.
import Dispatch
import NIOCore
import PlinthFeatures
import PlinthWire

extension Services {
    static let offlineMethods: [String: MethodHandler] = [
        Method.getHistoricalFeatures: MethodHandler { services, body, respond in
            services.getHistoricalFeatures(body, respond)
        },
        Method.getDataset: MethodHandler { services, body, respond in
            services.getDataset(body, respond)
        },
        Method.materialize: MethodHandler { services, body, respond in
            services.materialize(body, respond)
        },
        Method.skewCheck: MethodHandler { services, body, respond in
            services.skewCheck(body, respond)
        },
    ]

    func skewCheck(_ body: ByteBuffer, _ respond: Responder) {
        do {
            let request = try decode(PBSkewCheckRequest.self, body)
            let offline = self.offline, sampler = store.sampler
            DispatchQueue.global().async {
                do {
                    let report = try offline.skewCheck(service: request.featureService, count: Int(request.sample), sampler: sampler)
                    var out = PBSkewCheckResponse()
                    out.samplesChecked = UInt64(report.samplesChecked)
                    out.valuesChecked = UInt64(report.valuesChecked)
                    out.differences = report.differences.map { d in
                        var w = PBSkewDifference()
                        w.entity = d.entity
                        w.timeUs = d.time
                        w.feature = d.feature
                        if let v = d.online { w.onlineValue = v }
                        if let v = d.offline { w.offlineValue = v }
                        return w
                    }
                    respond.succeed(out)
                } catch { respond.fail(error) }
            }
        } catch { respond.fail(error) }
    }

    func getHistoricalFeatures(_ body: ByteBuffer, _ respond: Responder) {
        do {
            let request = try decode(PBGetHistoricalFeaturesRequest.self, body)
            let spine = try request.spine.map { try Column(wire: $0) }
            let historical = HistoricalRequest(features: request.features, service: request.featureService,
                                               spine: spine, eventTimes: request.eventTimeUs,
                                               fullFeatureNames: request.fullFeatureNames)
            let chunkRows = request.chunkRows == 0 ? 4096 : Int(min(request.chunkRows, 1 << 20))
            let offline = self.offline
            DispatchQueue.global().async {
                do {
                    let result = try offline.historical(historical)
                    let rows = result.eventTimes.count
                    var offset = 0
                    // Always at least one frame, so an empty spine still
                    // answers with the columns and the dataset.
                    repeat {
                        let range = offset..<min(rows, offset + chunkRows)
                        var frame = PBGetHistoricalFeaturesResponse()
                        frame.offset = UInt64(offset)
                        frame.totalRows = UInt64(rows)
                        frame.columns = result.columns.map { $0.slice(range).wire }
                        frame.eventTimeUs = Array(result.eventTimes[range])
                        if offset == 0 { frame.dataset = result.dataset.wire }
                        offset = range.upperBound
                        if offset < rows { respond.stream(frame) } else { respond.succeed(frame) }
                    } while offset < rows && !respond.isCancelled
                } catch { respond.fail(error) }
            }
        } catch { respond.fail(error) }
    }

    func getDataset(_ body: ByteBuffer, _ respond: Responder) {
        do {
            let request = try decode(PBGetDatasetRequest.self, body)
            guard let record = try offline.dataset(request.id) else {
                throw FeatureStoreError.notFound("unknown dataset '\(request.id)'")
            }
            respond.succeed(record.wire)
        } catch { respond.fail(error) }
    }

    func materialize(_ body: ByteBuffer, _ respond: Responder) {
        do {
            let request = try decode(PBMaterializeRequest.self, body)
            let offline = self.offline
            DispatchQueue.global().async {
                do {
                    let views = try offline.materialize(start: request.startUs, end: request.endUs,
                                                        incremental: request.incremental, views: request.featureViews) { view, scanned in
                        var frame = PBMaterializeResponse()
                        frame.rowsScanned = UInt64(scanned)
                        var current = PBMaterializedView()
                        current.featureView = view
                        frame.views = [current]
                        respond.stream(frame)
                    }
                    var out = PBMaterializeResponse()
                    out.done = true
                    out.views = views.map { v in
                        var w = PBMaterializedView()
                        w.featureView = v.view
                        w.startUs = v.start
                        w.endUs = v.end
                        w.entities = UInt64(v.entities)
                        w.onlineRowsWritten = UInt64(v.onlineRowsWritten)
                        w.onlineRowsStale = UInt64(v.onlineRowsStale)
                        w.resumed = v.resumed
                        return w
                    }
                    respond.succeed(out)
                } catch { respond.fail(error) }
            }
        } catch { respond.fail(error) }
    }
}

extension DatasetRecord {
    var wire: PBDataset {
        var out = PBDataset()
        out.id = id
        out.digest = digest
        out.features = features
        out.featureService = service
        out.fullFeatureNames = fullFeatureNames
        out.rows = UInt64(rows)
        out.spineColumns = spineColumns
        out.definitionVersions = definitionVersions
        out.schemaVersions = schemaVersions
        out.createdAtUs = createdAtMicros
        return out
    }
}
