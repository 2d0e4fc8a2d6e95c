import FirmwareAssembler
import Foundation

// The Docker and extract calls of the C ABI (facade: Disk.docker, Disk.export, Disk.extract).

/// `fwassemble docker --json` for the disk.
func dockerJSON(_ disk: Disk, options: CallOptions) throws -> String {
    try disk.docker(options: options.planOptions).json()
}

/// Exports a container (or, with the `image` option, an image) and returns the result as JSON.
/// `options` is an `ExportRequest`, plus the header's `"image": true|false`.
func exportContainer(_ disk: Disk, reference: String, output: String, options: [UInt8], hooks: JobHooks) throws -> String {
    let parsed: Any
    do {
        parsed = options.isEmpty ? [String: Any]() : try JSONSerialization.jsonObject(with: Data(options))
    } catch {
        throw CallError(.invalidArgument, "fwa_export_container: options_json is not JSON: \(error.localizedDescription)")
    }
    guard var object = parsed as? [String: Any] else { throw CallError(.invalidArgument, "fwa_export_container: options_json is not a JSON object") }
    let image = object.removeValue(forKey: "image")
    guard image == nil || image is Bool else { throw CallError(.invalidArgument, "fwa_export_container: option \"image\" must be true or false") }
    var request = try named("fwa_export_container") { try ExportRequest.decode(Array(try JSONSerialization.data(withJSONObject: object))) }
    try refuseSourceKeys(request.source, function: "fwa_export_container")
    if (image as? Bool) == true { request.exportImage = reference } else { request.export = reference }
    request.output.output = output
    return try JSONText.pretty(try disk.export(request, hooks: hooks))
}

