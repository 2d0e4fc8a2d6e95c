import Synchronization

/// A request to stop a running job: set from a signal handler (the CLI's SIGINT, SIGTERM and
/// SIGHUP), from another thread (Python's Ctrl-C through `fwa_cancel`), or by a progress callback.
/// The job's loops call `check()` once per entry and per output write; the job then throws
/// `FWError(.cancelled)` and every output stage removes what it had begun, as on any error.
///
/// Setting it is one atomic store, so it is async-signal-safe.
public final class Cancellation: Sendable {
    /// 0: running; a signal number, or -1 for a cancel that is not a signal.
    private let state = Atomic<Int32>(0)

    public init() {}

    /// The process-wide cancellation the CLI's signal handlers set (`Cancellation.process.signal`).
    public static let process = Cancellation()

    /// Asks the job to stop (idempotent; the first reason is kept).
    public func cancel() {
        _ = state.compareExchange(expected: 0, desired: -1, ordering: .relaxed)
    }

    /// Asks the job to stop because of `signal` (async-signal-safe).
    public func signal(_ signal: Int32) {
        _ = state.compareExchange(expected: 0, desired: signal, ordering: .relaxed)
    }

    /// Makes it usable for the next job (a C ABI handle's, between calls).
    public func reset() {
        state.store(0, ordering: .relaxed)
    }

    public var isCancelled: Bool { state.load(ordering: .relaxed) != 0 }

    /// The signal that cancelled, if a signal did.
    public var signalNumber: Int32? {
        let s = state.load(ordering: .relaxed)
        return s > 0 ? s : nil
    }

    /// Throws `FWError(.cancelled)` once `cancel` or `signal` was called (this or the process's).
    public func check() throws {
        if let error = stopError() { throw error }
    }

    /// The error `check` throws, or nil while running.
    public func stopError() -> FWError? {
        for c in [self, Cancellation.process] {
            let s = c.state.load(ordering: .relaxed)
            if s > 0 { return FWError(.cancelled, "interrupted by signal \(s)") }
            if s < 0 { return FWError(.cancelled, "cancelled") }
        }
        return nil
    }
}
