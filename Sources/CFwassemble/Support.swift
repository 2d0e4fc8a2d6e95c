#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import FirmwareAssembler
import Foundation

// Plumbing of the C ABI (include/fwassemble.h): status codes, error objects, strings handed to
// the caller, handles, and the options JSON. Nothing here is public: the exported symbols are
// the @_cdecl functions in CAPI.swift.

/// The FWA_ERR_* codes of the header, and their stable names.
enum Status: Int32, CaseIterable {
    case ok = 0, io = 1, notFound = 2, corrupt = 3, unsupported = 4, limitExceeded = 5
    case invalidArgument = 6, notAvailable = 7, `internal` = 8, cancelled = 9

    var name: String {
        switch self {
        case .ok: return "ok"
        case .io: return "io"
        case .notFound: return "not_found"
        case .corrupt: return "corrupt"
        case .unsupported: return "unsupported"
        case .limitExceeded: return "limit_exceeded"
        case .invalidArgument: return "invalid_argument"
        case .notAvailable: return "not_available"
        case .internal: return "internal"
        case .cancelled: return "cancelled"
        }
    }

    /// The code of an `FWError.Code`, by its raw value (a code added later maps to `.internal`
    /// until it gets its own number).
    init(_ code: FWError.Code) {
        switch code.rawValue {
        case "io": self = .io
        case "notFound": self = .notFound
        case "corrupt": self = .corrupt
        case "unsupported": self = .unsupported
        case "limitExceeded": self = .limitExceeded
        case "invalidArgument": self = .invalidArgument
        case "cancelled": self = .cancelled
        default: self = .internal
        }
    }
}

/// A failure of an ABI call: the code and the message the caller gets.
struct CallError: Error {
    var status: Status
    var message: String

    init(_ status: Status, _ message: String) {
        self.status = status
        self.message = message
    }

    init(_ error: any Error) {
        if let e = error as? CallError {
            self = e
        } else if let e = error as? FWError {
            self.init(Status(e.code), e.description)
        } else {
            self.init(.internal, "\(error)")
        }
    }
}

/// What `fwa_error *` points at: retained by `Unmanaged`, released by `fwa_error_free`.
final class ErrorObject {
    let code: Int32
    /// malloc'ed C string, freed in deinit.
    let message: UnsafeMutablePointer<CChar>

    init(_ error: CallError) {
        code = error.status.rawValue
        message = duplicate(error.message)
    }

    deinit { free(message) }
}

/// A malloc'ed copy of `s` (what `fwa_string_free` frees). Embedded NULs cannot occur in our
/// JSON (they are escaped) or messages; `strdup` stops at the first one if they did.
func duplicate(_ s: String) -> UnsafeMutablePointer<CChar> {
    if let p = strdup(s) { return p }
    // strdup fails only when memory is exhausted: nothing sensible is left to do.
    fatalError("fwassemble: out of memory")
}

/// Static C strings (version, code names): allocated once, never freed.
enum StaticStrings {
    nonisolated(unsafe) static let version: UnsafeMutablePointer<CChar> = duplicate(fwassembleVersion)
    nonisolated(unsafe) static let codeNames: [UnsafeMutablePointer<CChar>] = Status.allCases.map { duplicate($0.name) }
    nonisolated(unsafe) static let unknownCode: UnsafeMutablePointer<CChar> = duplicate("unknown")
}

/// Runs one ABI call: clears the out-parameters, maps a thrown error to its code and error object.
func call(_ err: UnsafeMutablePointer<OpaquePointer?>?, _ body: () throws -> Void) -> Int32 {
    err?.pointee = nil
    do {
        try body()
        return Status.ok.rawValue
    } catch {
        let failure = CallError(error)
        err?.pointee = OpaquePointer(Unmanaged.passRetained(ErrorObject(failure)).toOpaque())
        return failure.status.rawValue
    }
}

/// Hands a string to the caller through `out` (required for the calls whose only product is it).
func give(_ s: String, to out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) {
    out?.pointee = duplicate(s)
}

/// A call whose only product is the JSON document `body` returns, handed over through `json`:
/// cleared first, required (NULL is an invalid argument of `function`), set on success only.
func callGivingJSON(_ function: String, _ json: CStringOut?, _ err: ErrorOut?, _ body: () throws -> String) -> Int32 {
    json?.pointee = nil
    return call(err) {
        guard let json else { throw CallError(.invalidArgument, "\(function): the json out-parameter is NULL") }
        give(try body(), to: json)
    }
}

/// A C string argument as a Swift string; NULL or invalid UTF-8 is an invalid argument.
func string(_ p: UnsafePointer<CChar>?, _ what: String) throws -> String {
    guard let p else { throw CallError(.invalidArgument, "\(what) is NULL") }
    guard let s = String(validatingCString: p) else { throw CallError(.invalidArgument, "\(what) is not valid UTF-8") }
    return s
}

/// The disk behind a handle.
func disk(_ handle: OpaquePointer?) throws -> Disk {
    guard let handle else { throw CallError(.invalidArgument, "the disk handle is NULL") }
    return Unmanaged<Disk>.fromOpaque(UnsafeRawPointer(handle)).takeUnretainedValue()
}

/// The options of the calls that only plan (fwa_plan_json, fwa_docker_json): "root".
struct CallOptions: Decodable {
    var root: String?

    /// Parses `json` (NULL or empty: no options) for `function`; unknown keys are refused.
    static func parse(_ json: UnsafePointer<CChar>?, for function: String) throws -> CallOptions {
        var request = try named(function) { try AssembleRequest.decode(try jsonBytes(json)) }
        let root = request.root
        request.root = nil
        guard request == AssembleRequest() else {
            throw CallError(.invalidArgument, "\(function): the only option is \"root\"")
        }
        return CallOptions(root: root)
    }

    var planOptions: PlanOptions { PlanOptions(root: root) }
}

/// `body`'s errors with the C function's name in front ("fwa_plan_json: ...").
func named<T>(_ function: String, _ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let e as FWError where e.code == .invalidArgument {
        throw CallError(.invalidArgument, "\(function): \(e.description)")
    }
}

/// The bytes of an options JSON string (NULL: none, read as {}).
func jsonBytes(_ json: UnsafePointer<CChar>?) throws -> [UInt8] {
    guard let json else { return [] }
    return Array(try string(json, "options_json").utf8)
}

/// A job's options name no disk: the handle is the disk (backing_dir, snapshot, flash_geometry
/// and device go to fwa_open2).
func refuseSourceKeys(_ source: SourceRequest, function: String) throws {
    if source.disk != nil || source.backingDir != nil || source.snapshot != nil || source.flashGeometry != nil || !source.devices.isEmpty {
        throw CallError(.invalidArgument, "\(function): \"disk\", \"backing_dir\", \"snapshot\", \"flash_geometry\" and \"device\" are given to fwa_open2, not to a job on an open disk")
    }
}

/// The progress callback and its user data, carried into the (Sendable) progress closure. The
/// closure runs on the calling thread, as the header promises, so the pointer never crosses threads.
struct ProgressTarget: @unchecked Sendable {
    let function: ProgressFunction
    let userData: UnsafeMutableRawPointer?

    func report(_ p: AssembleProgress) {
        p.currentPath.withCString { path in
            function(UInt64(max(p.entries, 0)), p.contentBytes, p.plannedBytes, path, userData)
        }
    }
}
