import FirmwareAssembler

/// Inspects a disk, shows its mount plan, walks the booted filesystem and writes it as one
/// archive; returns the archive's report.
func libraryExample(image: String, output: String) throws -> AssembleReport {
    let disk = try Disk(path: image)
    let inspection = try disk.inspect()
    print("\(inspection.partitions.count) partitions in a \(inspection.table.type) table")

    let plan = try disk.plan()
    print("root: partition \(plan.root.partition) (\(plan.root.reason))")

    // Entries rather than a tarball: the same order and fields the archive gets.
    var regularFiles = 0
    for entry in try disk.namespace(plan) where entry.metadata.type == .regular {
        if entry.hardlinkTarget == nil { regularFiles += 1 }
    }
    print("\(regularFiles) regular files")

    var request = AssembleRequest()
    request.output = OutputRequest(compression: .gzip, level: 6)
    let hooks = JobHooks(progress: { p in print("\(p.entries) entries, \(p.contentBytes) bytes") })
    let report = try disk.assemble(to: .path(output), request, hooks: hooks)
    print("wrote \(report.members) entries to \(report.output)")
    return report
}
