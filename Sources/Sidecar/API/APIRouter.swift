import HeartbeatCore
public import Hummingbird

/// The routes of API version 1 and `/metrics` (docs/API.md). Built from a plain struct of dependencies, so
/// tests drive the same router through HummingbirdTesting without a socket.
public func buildAPIRouter(_ dependencies: APIDependencies) -> Router<APIRequestContext> {
    let handlers = APIHandlers(dependencies)
    let router = Router(context: APIRequestContext.self)
    router.get("/v1/health") { _, _ in handlers.health() }
    router.get("/v1/peers") { _, _ in handlers.peers() }
    router.get("/v1/peers/{ip}") { _, context in try handlers.peer(try handlers.address(context)) }
    router.get("/v1/peers/{ip}/vms") { _, context in try handlers.peerVMs(try handlers.address(context)) }
    router.post("/v1/peers/{ip}/activity") { request, context in
        let suspect = try handlers.address(context)
        return try await handlers.activity(suspect, body: try await APIHandlers.body(of: request))
    }
    router.get("/v1/vms") { _, _ in handlers.localVMs() }
    router.get("/v1/conflicts") { _, _ in try handlers.conflicts() }
    router.post("/v1/reconcile") { request, _ in try handlers.reconcile(body: try await APIHandlers.body(of: request)) }
    router.get("/v1/maintenance") { _, _ in try handlers.hostMode() }
    router.post("/v1/maintenance") { request, _ in
        try handlers.setMaintenance(body: try await APIHandlers.body(of: request))
    }
    router.get("/metrics") { _, _ in handlers.metrics() }
    return router
}

/// The whole API: authentication in front of the router (so an unauthenticated client learns nothing, not
/// even which routes exist), error bodies, and request metrics.
public func buildAPIResponder(_ dependencies: APIDependencies) -> APIResponder {
    APIResponder(
        router: buildAPIRouter(dependencies).buildResponder(),
        token: dependencies.token,
        metrics: dependencies.metrics
    )
}

public struct APIResponder: HTTPResponder {
    public typealias Context = APIRequestContext

    let router: RouterResponder<APIRequestContext>
    let token: APIToken
    let metrics: APIMetrics

    public func respond(to request: Request, context: APIRequestContext) async throws -> Response {
        guard token.accepts(authorization: request.headers[.authorization]) else {
            metrics.recordRequest(route: "unauthenticated", status: 401)
            return Response(status: .unauthorized, headers: [.wwwAuthenticate: "Bearer"])
        }
        var response: Response
        do {
            response = try await router.respond(to: request, context: context)
        } catch let error as APIError {
            response = error.response()
        } catch {
            context.logger.error("API request failed: \(error)")
            response = APIError(.internalServerError, "internal", "internal error").response()
        }
        var route = context.endpointPath ?? "unmatched"
        if route == "NotFound" {
            route = "unmatched"
            response = APIError.notFound.response()
        }
        metrics.recordRequest(route: route, status: response.status.code)
        return response
    }
}

/// The answers. Everything except the activity check comes from memory and returns at once.
struct APIHandlers: Sendable {
    let dependencies: APIDependencies

    init(_ dependencies: APIDependencies) {
        self.dependencies = dependencies
    }

    private var own: HostAddress { dependencies.identity.address }

    func address(_ context: APIRequestContext) throws(APIError) -> HostAddress {
        let text = context.parameters.get("ip") ?? ""
        guard let address = HostAddress(text) else { throw .invalidHost(text) }
        return address
    }

    static func body(of request: Request) async throws(APIError) -> [UInt8] {
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > APILimits.maxBodyBytes {
            throw .bodyTooLarge
        }
        do {
            var buffer = try await request.body.collect(upTo: APILimits.maxBodyBytes)
            return buffer.readBytes(length: buffer.readableBytes) ?? []
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw .bodyTooLarge
        } catch {
            throw .badRequest("bad-body", "the request body could not be read")
        }
    }

    // MARK: Routes

    func health() -> Response {
        let pools = dependencies.pools()
        let now = ContinuousClock.now
        let libvirt = dependencies.libvirt()
        let poolHealth = pools.map { pool -> APIPoolHealth in
            let health = pool.health
            return APIPoolHealth(
                pool: pool.id,
                location: pool.location,
                reachable: health.reachable,
                reachableForSeconds: APIRounding.milliseconds(health.since.duration(to: now).seconds),
                lastGoodBeatMs: health.lastGoodBeatWallMs,
                lastError: health.lastError,
                lastErrorMs: health.lastErrorWallMs,
                beatsOK: health.beatsOK,
                beatsFailed: health.beatsFailed,
                ioStuckSeconds: pool.stuckSince.map { APIRounding.milliseconds($0.duration(to: now).seconds) }
            )
        }
        let status: String
        if !poolHealth.isEmpty && poolHealth.allSatisfy(\.reachable) && libvirt.connected {
            status = "ok"
        } else if !poolHealth.isEmpty && !poolHealth.contains(where: \.reachable) {
            status = "failing"
        } else {
            status = "degraded"
        }
        let identity = dependencies.identity
        return APIJSON.response(
            APIHealth(
                status: status,
                version: dependencies.version,
                apiVersion: SidecarVersion.api,
                host: identity.address.description,
                hostUUID: identity.hostUUID,
                incarnation: identity.incarnation,
                bootID: identity.bootID,
                uptimeSeconds: APIRounding.milliseconds(dependencies.startedAt.duration(to: now).seconds),
                pools: poolHealth,
                libvirt: APILibvirtStatus(libvirt),
                fencing: dependencies.fencing().map(APIFencingStatus.init),
                mode: dependencies.hostMode.map { APIHostMode($0.snapshot()) },
                records: APIRecordSigning(keyID: dependencies.recordKeyID)
            )
        )
    }

    func peers() -> Response {
        let bmc = dependencies.bmc()
        let reports = dependencies.peerReports()
        return APIJSON.response(
            APIPeerList(
                checker: own.description,
                peers: reports.map { report in
                    var answer = APIPeerReport(report, bmc: bmc[report.peer]?.combine(report.overall))
                    answer.add(probe: dependencies.peerProbe(report.peer), liveness: report.overall.liveness)
                    answer.add(matrixFrom: reports, checker: own)
                    return answer
                }
            )
        )
    }

    /// CheckOnHost: the storage verdict, with the BMC's evidence from memory when the peer has one.
    func peer(_ host: HostAddress) throws(APIError) -> Response {
        APIJSON.response(bytes: try peerBody(host))
    }

    /// CheckOnHost's JSON, for the router and for `APIHotRoute`.
    func peerBody(_ host: HostAddress) throws(APIError) -> [UInt8] {
        let report = try knownReport(host)
        var answer = APIPeerReport(report, bmc: dependencies.bmc()[host]?.combine(report.overall))
        answer.add(probe: dependencies.peerProbe(host), liveness: report.overall.liveness)
        answer.add(matrixFrom: dependencies.peerReports(), checker: own)
        var writer = APIJSONWriter()
        answer.write(to: &writer)
        return writer.bytes
    }

    func peerVMs(_ host: HostAddress) throws(APIError) -> Response {
        let report = try knownReport(host)
        guard let published = Self.freshestRecord(report) else {
            throw APIError(.notFound, "no-vm-list", "no readable record of \(host) has been seen on any pool")
        }
        let nowMs = dependencies.wallClockMs()
        return APIJSON.response(
            APIPeerVMs(
                host: host.description,
                verdict: APIVerdict(report.overall),
                pool: published.pool,
                sequence: published.record.sequence,
                incarnation: published.record.incarnation,
                recordWallTimeMs: published.record.wallTimeMs,
                confirmedAtMs: Self.confirmedAt(published, nowMs: nowMs),
                vms: published.record.vms.map(APIVM.init),
                vmsOmitted: published.record.vmsOmitted
            )
        )
    }

    func activity(_ suspect: HostAddress, body: [UInt8]) async throws(APIError) -> Response {
        let request = try APIRequestParser.activity(suspect: suspect, body: body)
        guard let pool = dependencies.pools().first(where: { $0.id == request.pool }) else {
            throw APIError(.notFound, "unknown-pool", "this host does not use a pool \(request.pool)")
        }
        let report = dependencies.peerReport(suspect)
        let liveness = Self.isKnown(report) ? report.overall.liveness : nil
        let answer = await ActivityProbe.run(
            request,
            pool: pool,
            liveness: liveness,
            checker: own,
            nowMs: dependencies.wallClockMs()
        )
        dependencies.metrics.recordActivity(answer.activity)
        return APIJSON.response(answer)
    }

    func localVMs() -> Response {
        let libvirt = dependencies.libvirt()
        return APIJSON.response(
            APILocalVMs(
                host: own.description,
                libvirt: APILibvirtStatus(libvirt),
                confirmedAtMs: libvirt.confirmedAtMs,
                vms: dependencies.localVMs().map(APIVM.init)
            )
        )
    }

    func reconcile(body: [UInt8]) throws(APIError) -> Response {
        let request = try APIRequestParser.reconcile(body: body)
        let nowMs = dependencies.wallClockMs()
        let local = HostVMs(
            host: own,
            liveness: .alive,
            vms: dependencies.localVMs(),
            confirmedAtMs: dependencies.libvirt().confirmedAtMs
        )
        var peers: [HostVMs] = []
        var targetKnownWithoutList = false
        for report in dependencies.peerReports() {
            guard let published = Self.freshestRecord(report) else {
                if report.peer == request.host { targetKnownWithoutList = true }
                continue
            }
            peers.append(
                HostVMs(
                    host: report.peer,
                    liveness: report.overall.liveness,
                    vms: published.record.vms,
                    confirmedAtMs: Self.confirmedAt(published, nowMs: nowMs)
                )
            )
        }
        let target: HostVMs
        let others: [HostVMs]
        if let host = request.host, host != own {
            guard let found = peers.first(where: { $0.host == host }) else {
                throw targetKnownWithoutList
                    ? APIError(.notFound, "no-vm-list", "no readable record of \(host) has been seen on any pool")
                    : .unknownPeer(host.description)
            }
            target = found
            others = [local] + peers.filter { $0.host != host }
        } else {
            target = local
            others = peers
        }
        let result = Reconciliation.reconcile(target: target, others: others, believed: request.vms)
        return APIJSON.response(
            APIReconciliation(
                host: target.host.description,
                hostVerdict: target.liveness.rawValue,
                confirmedAtMs: target.confirmedAtMs,
                checked: request.vms.count,
                matched: result.matched,
                mismatches: result.mismatches.map(APIMismatch.init)
            )
        )
    }

    func metrics() -> Response {
        dependencies.metrics.recordBMC(dependencies.bmc().mapValues(\.status))
        let body = dependencies.metrics.render(
            peers: dependencies.peerReports(), pools: dependencies.pools(), fencing: dependencies.fencing())
        return Response(
            status: .ok,
            headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: body))
        )
    }

    // MARK: Pieces

    private func knownReport(_ host: HostAddress) throws(APIError) -> PeerReport {
        if host == own {
            throw APIError(.notFound, "this-host", "\(host) is this host: ask /v1/health")
        }
        let report = dependencies.peerReport(host)
        guard Self.isKnown(report) else { throw .unknownPeer(host.description) }
        return report
    }

    /// Seen on some pool at all (a record, or a file that was not a usable record).
    static func isKnown(_ report: PeerReport) -> Bool {
        report.perPool.values.contains { $0.evidence.secondsObserved != nil || $0.evidence.lastRecord != nil }
    }

    /// Our wall clock when the record last changed (the evidence is on our monotonic clock).
    static func confirmedAt(
        _ published: (pool: String, record: HeartbeatRecord, sinceChange: Double),
        nowMs: Int64
    ) -> Int64 {
        let millis = published.sinceChange * 1000
        guard millis.isFinite, millis >= 0, millis < 1e15 else { return published.record.wallTimeMs }
        return nowMs - Int64(millis)
    }

    /// The record that changed most recently, over all pools.
    static func freshestRecord(_ report: PeerReport) -> (pool: String, record: HeartbeatRecord, sinceChange: Double)? {
        var best: (pool: String, record: HeartbeatRecord, sinceChange: Double)?
        for pool in report.perPool.keys.sorted() {
            let evidence = report.perPool[pool]!.evidence
            guard let record = evidence.lastRecord else { continue }
            let since = evidence.secondsSinceChange ?? .infinity
            if best == nil || since < best!.sinceChange { best = (pool, record, since) }
        }
        return best
    }
}

extension APILibvirtStatus {
    init(_ status: LibvirtStatus) {
        self.init(connected: status.connected, sinceMs: status.sinceMs, lastError: status.lastError)
    }
}
