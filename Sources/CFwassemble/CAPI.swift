#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import FirmwareAssembler

// The exported functions of libfwassemble.so, one per declaration in include/fwassemble.h (same
// order, same parameter types). Each maps its arguments onto one facade call; failures become a
// status code and an error object (Support.swift).

public typealias CString = UnsafeMutablePointer<CChar>
public typealias CStringOut = UnsafeMutablePointer<CString?>
public typealias ErrorOut = UnsafeMutablePointer<OpaquePointer?>
/// fwa_progress_fn
public typealias ProgressFunction = @convention(c) (UInt64, UInt64, UInt64, UnsafePointer<CChar>?, UnsafeMutableRawPointer?) -> Void

@_cdecl("fwa_version")
public func fwa_version() -> UnsafePointer<CChar> {
    UnsafePointer(StaticStrings.version)
}

@_cdecl("fwa_open")
public func fwa_open(_ path: UnsafePointer<CChar>?, _ diskOut: UnsafeMutablePointer<OpaquePointer?>?, _ err: ErrorOut?) -> Int32 {
    diskOut?.pointee = nil
    return call(err) {
        guard let diskOut else { throw CallError(.invalidArgument, "fwa_open: the disk out-parameter is NULL") }
        let disk = try Disk(path: try string(path, "path"))
        diskOut.pointee = OpaquePointer(Unmanaged.passRetained(disk).toOpaque())
    }
}

@_cdecl("fwa_open2")
public func fwa_open2(_ path: UnsafePointer<CChar>?, _ options: UnsafePointer<CChar>?, _ diskOut: UnsafeMutablePointer<OpaquePointer?>?,
                      _ err: ErrorOut?) -> Int32 {
    diskOut?.pointee = nil
    return call(err) {
        guard let diskOut else { throw CallError(.invalidArgument, "fwa_open2: the disk out-parameter is NULL") }
        var source = try SourceRequest.decode(try jsonBytes(options))
        source.disk = try string(path, "path")
        let disk = try source.open()
        diskOut.pointee = OpaquePointer(Unmanaged.passRetained(disk).toOpaque())
    }
}

@_cdecl("fwa_close")
public func fwa_close(_ handle: OpaquePointer?) {
    guard let handle else { return }
    Unmanaged<Disk>.fromOpaque(UnsafeRawPointer(handle)).release()
}

@_cdecl("fwa_inspect_json")
public func fwa_inspect_json(_ handle: OpaquePointer?, _ json: CStringOut?, _ err: ErrorOut?) -> Int32 {
    callGivingJSON("fwa_inspect_json", json, err) {
        try disk(handle).inspect().json()
    }
}

@_cdecl("fwa_plan_json")
public func fwa_plan_json(_ handle: OpaquePointer?, _ options: UnsafePointer<CChar>?, _ json: CStringOut?, _ err: ErrorOut?) -> Int32 {
    callGivingJSON("fwa_plan_json", json, err) {
        let o = try CallOptions.parse(options, for: "fwa_plan_json")
        return try disk(handle).plan(options: o.planOptions).json()
    }
}

@_cdecl("fwa_docker_json")
public func fwa_docker_json(_ handle: OpaquePointer?, _ options: UnsafePointer<CChar>?, _ json: CStringOut?, _ err: ErrorOut?) -> Int32 {
    callGivingJSON("fwa_docker_json", json, err) {
        let o = try CallOptions.parse(options, for: "fwa_docker_json")
        return try dockerJSON(try disk(handle), options: o)
    }
}

/// The request of both assemble calls: the options JSON is an `AssembleRequest` (every CLI
/// option; the disk is the handle's), `out_path` its output.
private func assembleRequest(_ json: UnsafePointer<CChar>?, output: String?, function: String) throws -> AssembleRequest {
    var request = try named(function) { try AssembleRequest.decode(try jsonBytes(json)) }
    try refuseSourceKeys(request.source, function: function)
    if let output {
        if let given = request.output.output, given != output {
            throw CallError(.invalidArgument, "\(function): out_path \(output) and the \"output\" option \(given) differ")
        }
        request.output.output = output
    }
    return request
}

/// The hooks of a long call: progress to the C callback, the handle's cancellation (`fwa_cancel`).
private func hooks(_ d: Disk, progress: ProgressFunction?, userData: UnsafeMutableRawPointer?) -> JobHooks {
    d.cancellation.reset()
    var hooks = JobHooks(cancellation: d.cancellation)
    if let progress {
        let target = ProgressTarget(function: progress, userData: userData)
        hooks.progress = { target.report($0) }
    }
    return hooks
}

@_cdecl("fwa_assemble")
public func fwa_assemble(_ handle: OpaquePointer?, _ outPath: UnsafePointer<CChar>?, _ options: UnsafePointer<CChar>?,
                         _ progress: ProgressFunction?, _ userData: UnsafeMutableRawPointer?,
                         _ reportJSON: CStringOut?, _ err: ErrorOut?) -> Int32 {
    reportJSON?.pointee = nil
    return call(err) {
        let d = try disk(handle)
        let request = try assembleRequest(options, output: try outPath.map { try string($0, "out_path") }, function: "fwa_assemble")
        let report = try d.assemble(request, hooks: hooks(d, progress: progress, userData: userData))
        if let reportJSON { give(try report.json(), to: reportJSON) }
    }
}

@_cdecl("fwa_assemble_fd")
public func fwa_assemble_fd(_ handle: OpaquePointer?, _ fd: Int32, _ options: UnsafePointer<CChar>?,
                            _ progress: ProgressFunction?, _ userData: UnsafeMutableRawPointer?,
                            _ reportJSON: CStringOut?, _ err: ErrorOut?) -> Int32 {
    reportJSON?.pointee = nil
    return call(err) {
        let d = try disk(handle)
        let request = try assembleRequest(options, output: nil, function: "fwa_assemble_fd")
        let report = try d.assemble(to: .fileDescriptor(fd), request, hooks: hooks(d, progress: progress, userData: userData))
        if let reportJSON { give(try report.json(), to: reportJSON) }
    }
}

@_cdecl("fwa_extract")
public func fwa_extract(_ handle: OpaquePointer?, _ partition: UnsafePointer<CChar>?, _ outPath: UnsafePointer<CChar>?,
                        _ options: UnsafePointer<CChar>?, _ resultJSON: CStringOut?, _ err: ErrorOut?) -> Int32 {
    resultJSON?.pointee = nil
    return call(err) {
        let d = try disk(handle)
        var request = try named("fwa_extract") { try ExtractRequest.decode(try jsonBytes(options)) }
        try refuseSourceKeys(request.source, function: "fwa_extract")
        request.partition = try string(partition, "partition")
        request.output.output = try string(outPath, "out_path")
        let result = try d.extract(request, hooks: hooks(d, progress: nil, userData: nil))
        if let resultJSON { give(try JSONText.pretty(result), to: resultJSON) }
    }
}

@_cdecl("fwa_export_container")
public func fwa_export_container(_ handle: OpaquePointer?, _ container: UnsafePointer<CChar>?, _ outPath: UnsafePointer<CChar>?,
                                 _ options: UnsafePointer<CChar>?, _ resultJSON: CStringOut?, _ err: ErrorOut?) -> Int32 {
    resultJSON?.pointee = nil
    return call(err) {
        let d = try disk(handle)
        let reference = try string(container, "container")
        let output = try string(outPath, "out_path")
        let result = try exportContainer(d, reference: reference, output: output, options: try jsonBytes(options),
                                         hooks: hooks(d, progress: nil, userData: nil))
        if let resultJSON { give(result, to: resultJSON) }
    }
}

@_cdecl("fwa_cancel")
public func fwa_cancel(_ handle: OpaquePointer?) {
    guard let handle else { return }
    Unmanaged<Disk>.fromOpaque(UnsafeRawPointer(handle)).takeUnretainedValue().cancellation.cancel()
}

@_cdecl("fwa_string_free")
public func fwa_string_free(_ s: CString?) {
    free(s)
}

@_cdecl("fwa_error_code")
public func fwa_error_code(_ err: OpaquePointer?) -> Int32 {
    guard let err else { return Status.ok.rawValue }
    return Unmanaged<ErrorObject>.fromOpaque(UnsafeRawPointer(err)).takeUnretainedValue().code
}

@_cdecl("fwa_error_message")
public func fwa_error_message(_ err: OpaquePointer?) -> UnsafePointer<CChar>? {
    guard let err else { return nil }
    return UnsafePointer(Unmanaged<ErrorObject>.fromOpaque(UnsafeRawPointer(err)).takeUnretainedValue().message)
}

@_cdecl("fwa_error_code_name")
public func fwa_error_code_name(_ code: Int32) -> UnsafePointer<CChar> {
    guard let status = Status(rawValue: code), let index = Status.allCases.firstIndex(of: status) else {
        return UnsafePointer(StaticStrings.unknownCode)
    }
    return UnsafePointer(StaticStrings.codeNames[index])
}

@_cdecl("fwa_error_free")
public func fwa_error_free(_ err: OpaquePointer?) {
    guard let err else { return }
    Unmanaged<ErrorObject>.fromOpaque(UnsafeRawPointer(err)).release()
}
