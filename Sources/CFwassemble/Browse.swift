#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import FirmwareAssembler

// The browsing calls (include/fwassemble.h, "Looking inside"): a tree handle over one disk's
// booted namespace or partition, and diff. JSON out is the CLI's own (`ls --json`, `stat --json`,
// `find --json`, `diff --json` lines).

/// fwa_line_fn: one JSON line, valid during the call; nonzero stops.
public typealias LineFunction = @convention(c) (UnsafePointer<CChar>?, UnsafeMutableRawPointer?) -> Int32

/// The tree behind an `fwa_tree` handle (calls on one handle must not overlap).
final class TreeHandle {
    let tree: DeviceTree
    init(_ tree: DeviceTree) { self.tree = tree }
}

func tree(_ handle: OpaquePointer?) throws -> DeviceTree {
    guard let handle else { throw CallError(.invalidArgument, "the tree handle is NULL") }
    return Unmanaged<TreeHandle>.fromOpaque(UnsafeRawPointer(handle)).takeUnretainedValue().tree
}

/// The callback asked to stop: the call ends successfully.
private struct StoppedByCallback: Error {}

/// Hands one line to the callback; false when it asks to stop.
private func hand(_ line: String, to each: LineFunction, _ userData: UnsafeMutableRawPointer?) -> Bool {
    line.withCString { each($0, userData) } == 0
}

@_cdecl("fwa_tree_open")
public func fwa_tree_open(_ handle: OpaquePointer?, _ options: UnsafePointer<CChar>?, _ treeOut: UnsafeMutablePointer<OpaquePointer?>?,
                          _ err: ErrorOut?) -> Int32 {
    treeOut?.pointee = nil
    return call(err) {
        guard let treeOut else { throw CallError(.invalidArgument, "fwa_tree_open: the tree out-parameter is NULL") }
        let request = try named("fwa_tree_open") { try BrowseRequest.decode(try jsonBytes(options)) }
        try refuseSourceKeys(request.source, function: "fwa_tree_open")
        let t = try disk(handle).tree(request)
        treeOut.pointee = OpaquePointer(Unmanaged.passRetained(TreeHandle(t)).toOpaque())
    }
}

@_cdecl("fwa_tree_close")
public func fwa_tree_close(_ handle: OpaquePointer?) {
    guard let handle else { return }
    Unmanaged<TreeHandle>.fromOpaque(UnsafeRawPointer(handle)).release()
}

@_cdecl("fwa_tree_list_json")
public func fwa_tree_list_json(_ handle: OpaquePointer?, _ path: UnsafePointer<CChar>?, _ json: CStringOut?, _ err: ErrorOut?) -> Int32 {
    callGivingJSON("fwa_tree_list_json", json, err) {
        try tree(handle).list(try string(path, "path")).map { try EntryLine($0, byPath: false).json() + "\n" }.joined()
    }
}

@_cdecl("fwa_tree_stat_json")
public func fwa_tree_stat_json(_ handle: OpaquePointer?, _ path: UnsafePointer<CChar>?, _ follow: Int32, _ json: CStringOut?,
                               _ err: ErrorOut?) -> Int32 {
    callGivingJSON("fwa_tree_stat_json", json, err) {
        try tree(handle).stat(try string(path, "path"), followSymlinks: follow != 0).json()
    }
}

@_cdecl("fwa_tree_read")
public func fwa_tree_read(_ handle: OpaquePointer?, _ path: UnsafePointer<CChar>?, _ data: UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>?,
                          _ size: UnsafeMutablePointer<Int>?, _ err: ErrorOut?) -> Int32 {
    data?.pointee = nil
    size?.pointee = 0
    return call(err) {
        guard let data, let size else { throw CallError(.invalidArgument, "fwa_tree_read: the data and size out-parameters are required") }
        let bytes = try tree(handle).read(try string(path, "path"))
        guard let buffer = malloc(max(bytes.count, 1))?.assumingMemoryBound(to: UInt8.self) else {
            throw CallError(.internal, "fwa_tree_read: out of memory for \(bytes.count) bytes")
        }
        bytes.withUnsafeBufferPointer { if let base = $0.baseAddress { buffer.update(from: base, count: bytes.count) } }
        data.pointee = buffer
        size.pointee = bytes.count
    }
}

@_cdecl("fwa_tree_walk")
public func fwa_tree_walk(_ handle: OpaquePointer?, _ path: UnsafePointer<CChar>?, _ each: LineFunction?, _ userData: UnsafeMutableRawPointer?,
                          _ problemsJSON: CStringOut?, _ err: ErrorOut?) -> Int32 {
    problemsJSON?.pointee = nil
    return call(err) {
        guard let each else { throw CallError(.invalidArgument, "fwa_tree_walk: the callback is NULL") }
        let t = try tree(handle)
        var walk = try t.walk(path.map { try string($0, "path") } ?? "/")
        while let entry = walk.next() {
            guard hand(try EntryLine(entry, byPath: true).json(), to: each, userData) else { break }
        }
        if let problemsJSON { give(try JSONText.line(t.warnings + walk.problems), to: problemsJSON) }
    }
}

@_cdecl("fwa_diff")
public func fwa_diff(_ a: OpaquePointer?, _ b: OpaquePointer?, _ options: UnsafePointer<CChar>?, _ each: LineFunction?,
                     _ userData: UnsafeMutableRawPointer?, _ summaryJSON: CStringOut?, _ err: ErrorOut?) -> Int32 {
    summaryJSON?.pointee = nil
    return call(err) {
        guard let each else { throw CallError(.invalidArgument, "fwa_diff: the callback is NULL") }
        let request = try named("fwa_diff") { try DiffRequest.decode(try jsonBytes(options)) }
        try refuseSourceKeys(request.tree.source, function: "fwa_diff")
        if request.other != nil { throw CallError(.invalidArgument, "fwa_diff: the second disk is the second handle, not \"other\"") }
        try request.tree.validate()
        do {
            let summary = try disk(a).diff(against: try disk(b), request) { change in
                guard hand(try change.json(), to: each, userData) else { throw StoppedByCallback() }
            }
            if let summaryJSON { give(try JSONText.line(summary), to: summaryJSON) }
        } catch is StoppedByCallback {
            return
        }
    }
}
