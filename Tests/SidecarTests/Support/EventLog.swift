/// Collects the elements of an async stream so a test can await the next one that matches, with a
/// deadline that only catches hangs.
actor EventLog<Event: Sendable> {
    /// Everything received so far, in order.
    private(set) var all: [Event] = []
    /// Received while nobody waited, not yet passed over by `next`.
    private var pending: [Event] = []
    private var ended = false
    private var waiter: Waiter?
    private var nextWaiterID = 0
    private var consumer: Task<Void, Never>?

    private enum Outcome {
        case event(Event)
        case ended
        case timedOut
    }

    private struct Waiter {
        let id: Int
        let matches: @Sendable (Event) -> Bool
        let continuation: CheckedContinuation<Outcome, Never>
        let timer: Task<Void, Never>
    }

    /// Starts collecting `stream`.
    static func collecting(_ stream: AsyncStream<Event>) async -> EventLog<Event> {
        let log = EventLog<Event>()
        await log.consume(stream)
        return log
    }

    private func consume(_ stream: AsyncStream<Event>) {
        consumer = Task {
            for await event in stream {
                self.append(event)
            }
            self.end()
        }
    }

    /// The first event from here on that matches, passing over the others; throws if none comes in time
    /// or the stream ends first.
    @discardableResult
    func next(
        _ what: String,
        within deadline: Duration = hangDeadline,
        where matches: @escaping @Sendable (Event) -> Bool
    ) async throws -> Event {
        if let index = pending.firstIndex(where: matches) {
            let event = pending[index]
            pending.removeFirst(index + 1)
            return event
        }
        pending.removeAll()
        switch await wait(within: deadline, for: matches) {
        case .event(let event):
            return event
        case .ended:
            throw EventLogFailure(description: "\(what): the stream ended first; received \(all)")
        case .timedOut:
            throw EventLogFailure(description: "\(what): nothing within \(deadline); received \(all)")
        }
    }

    /// Waits until the stream has finished.
    func waitForEnd(_ what: String, within deadline: Duration = hangDeadline) async throws {
        pending.removeAll()
        if case .timedOut = await wait(within: deadline, for: { _ in false }) {
            throw EventLogFailure(description: "\(what): the stream did not end within \(deadline); received \(all)")
        }
    }

    /// Stops collecting (the stream's consumer task is cancelled).
    func stop() {
        consumer?.cancel()
    }

    private func wait(within deadline: Duration, for matches: @escaping @Sendable (Event) -> Bool) async -> Outcome {
        if ended {
            return .ended
        }
        nextWaiterID += 1
        let id = nextWaiterID
        return await withCheckedContinuation { continuation in
            let timer = Task {
                try? await Task.sleep(for: deadline)
                self.resumeWaiter(id: id, with: .timedOut)
            }
            waiter = Waiter(id: id, matches: matches, continuation: continuation, timer: timer)
        }
    }

    private func append(_ event: Event) {
        all.append(event)
        if let waiter {
            if waiter.matches(event) {
                resumeWaiter(id: waiter.id, with: .event(event))
            }
        } else {
            pending.append(event)
        }
    }

    private func end() {
        ended = true
        if let waiter {
            resumeWaiter(id: waiter.id, with: .ended)
        }
    }

    private func resumeWaiter(id: Int, with outcome: Outcome) {
        guard let waiter, waiter.id == id else {
            return
        }
        self.waiter = nil
        waiter.timer.cancel()
        waiter.continuation.resume(returning: outcome)
    }
}

struct EventLogFailure: Error, CustomStringConvertible {
    let description: String
}
