import FirmwareAssembler
import Foundation

// The Docker calls of the C ABI (facade: Disk.docker, Disk.exportDocker).

/// `fwassemble docker --json` for the disk.
func dockerJSON(_ disk: Disk, options: CallOptions) throws -> String {
    try disk.docker(options: options.planOptions).json()
}

/// What fwa_export_container returns as JSON.
private struct ExportResultJSON: Encodable {
    var what: String
    var output: String
    var layers: Int
    var members: Int
    var files: Int
    var hardlinks: Int
    var contentBytes: UInt64
    var tarBytes: UInt64
    var problems: [String]

    enum CodingKeys: String, CodingKey {
        case what, output, layers, members, files, hardlinks, contentBytes = "content_bytes", tarBytes = "tar_bytes", problems
    }
}

/// Exports a container (or, with the `image` option, an image) and returns the result as JSON.
/// `options` is an `ExportRequest`, plus the header's `"image": true|false`.
func exportContainer(_ disk: Disk, reference: String, output: String, options: [UInt8], hooks: JobHooks) throws -> String {
    var object = try (options.isEmpty ? [:] : JSONSerialization.jsonObject(with: Data(options))) as? [String: Any] ?? [:]
    let image = object.removeValue(forKey: "image")
    guard image == nil || image is Bool else { throw CallError(.invalidArgument, "fwa_export_container: option \"image\" must be true or false") }
    var request = try ExportRequest.decode(Array(try JSONSerialization.data(withJSONObject: object)))
    try refuseSourceKeys(request.source, function: "fwa_export_container")
    if (image as? Bool) == true { request.exportImage = reference } else { request.export = reference }
    request.output.output = output
    let r = try disk.export(request, hooks: hooks)
    let value = ExportResultJSON(what: r.what, output: r.output, layers: r.layers, members: r.members, files: r.files,
                                 hardlinks: r.hardlinks, contentBytes: r.contentBytes, tarBytes: r.tarBytes, problems: r.problems)
    return try encodePretty(value)
}

/// What fwa_extract returns as JSON (the CLI's summary line, as fields).
private struct ExtractResultJSON: Encodable {
    var partition: String
    var format: String
    var members: Int
    var files: Int
    var hardlinks: Int
    var contentBytes: UInt64
    var tarBytes: UInt64
    var problems: [String]
    var journal: JournalReport?

    enum CodingKeys: String, CodingKey {
        case partition, format, members, files, hardlinks, contentBytes = "content_bytes", tarBytes = "tar_bytes", problems, journal
    }
}

extension ExtractResult {
    func json() throws -> String {
        try encodePretty(ExtractResultJSON(partition: partition, format: format, members: members, files: files, hardlinks: hardlinks,
                                           contentBytes: contentBytes, tarBytes: tarBytes, problems: problems.map(\.description),
                                           journal: journal))
    }
}

func encodePretty<T: Encodable>(_ value: T) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}
