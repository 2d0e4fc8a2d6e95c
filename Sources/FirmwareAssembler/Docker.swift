import Archive
import Assembly
import DiskImage
import DockerState
import FileSystemTar
import FileSystems
import Foundation
import MountPlan

@_exported import struct DockerState.DockerReport
@_exported import struct DockerState.DataRootReport
@_exported import struct DockerState.ImageInfo
@_exported import struct DockerState.ContainerInfo
@_exported import struct DockerState.VolumeInfo
@_exported import struct DockerState.Integrity
@_exported import struct DockerState.Summary
@_exported import struct DockerState.NamespaceInfo
@_exported import struct DockerState.ImageRecord
@_exported import struct DockerState.SnapshotInfo
@_exported import struct DockerState.ContentInfo

extension DockerReport {
    /// The `fwassemble docker --json` document (docs/docker.md).
    public func json() throws -> String {
        try JSONText.pretty(self)
    }

    /// Containers expected vs found: `expected` is a JSON list of {"name": ..., "image": ...}
    /// (image optional: the container's `Config.Image`, or any reference `ImageLookup` resolves to
    /// its image: id, unique id prefix, tag or RepoDigest), or {"containers": [...]}.
    /// Returns human-readable mismatches (empty when everything matches).
    public func compare(expected json: [UInt8]) throws -> [String] {
        let parsed: Any
        do {
            parsed = try JSONSerialization.jsonObject(with: Data(json))
        } catch {
            throw FWError(.corrupt, "the expected-containers file is not valid JSON")
        }
        let list = (parsed as? [Any]) ?? ((parsed as? [String: Any])?["containers"] as? [Any])
        guard let list else { throw FWError(.corrupt, "the expected-containers file is not a list of {\"name\", \"image\"}") }
        let found = dataRoots.flatMap { root in root.containers.map { (root, $0) } }
        var mismatches: [String] = []
        var matched = Set<String>()
        for item in list {
            guard let object = item as? [String: Any], let name = object["name"] as? String else {
                throw FWError(.corrupt, "an expected container has no \"name\"")
            }
            let wanted = name.hasPrefix("/") ? String(name.dropFirst()) : name
            guard let (root, c) = found.first(where: { $0.1.name == wanted }) else {
                mismatches.append("missing container \(wanted)")
                continue
            }
            matched.insert(c.id)
            if let image = object["image"] as? String, !ImageLookup.container(c, runs: image, images: root.images, podmanShortNames: root.store == StoreKind.podman.rawValue) {
                mismatches.append("container \(wanted) runs image \(c.imageTag ?? c.image) (\(c.image)), expected \(image)")
            }
        }
        for (_, c) in found where !matched.contains(c.id) {
            mismatches.append("unexpected container \(c.name) (image \(c.imageTag ?? c.image))")
        }
        return mismatches
    }
}

/// What a container or image export wrote (as JSON: the C ABI's and Python's export result).
public struct DockerExportResult: Sendable, Encodable {
    /// "container hassio_supervisor (3f2a...)" or "image ghcr.io/x:latest (sha256:...)".
    public var what: String
    public var output: String
    public var layers: Int
    public var members: Int
    public var files: Int
    public var hardlinks: Int
    public var contentBytes: UInt64
    public var tarBytes: UInt64
    public var problems: [String]

    enum CodingKeys: String, CodingKey {
        case what, output, layers, members, files, hardlinks, contentBytes = "content_bytes", tarBytes = "tar_bytes", problems
    }
}

extension ExportRequest {
    /// The bounds on decompressing layer blobs (`--max-layer-size`, `--max-layer-ratio`).
    var layerLimits: LayerLimits {
        LayerLimits(maximumSize: maxLayerSize ?? LayerLimits.defaultMaximumSize, maximumRatio: maxLayerRatio ?? LayerLimits.defaultMaximumRatio)
    }
}

extension Disk {
    /// The Docker data-roots of the booted namespace: inventory and integrity (docs/docker.md).
    public func docker(options: PlanOptions = PlanOptions()) throws -> DockerReport {
        let booted = try BootedNamespace(disk: self, options: options)
        return DataRootLocator.report(for: booted.namespace, binds: booted.binds)
    }

    /// Writes a container's (`request.export`) or an image's (`request.exportImage`) merged
    /// filesystem as a tar archive with assemble's conventions through `OutputTarget`: layers
    /// merged by `OverlayMerge`, whiteouts and opaque markers applied and left out, hardlinks as
    /// link members. `request.source` is not read: this disk is the source.
    public func export(_ request: ExportRequest, hooks: JobHooks = JobHooks()) throws -> DockerExportResult {
        let (reference, image, resolved) = try request.validate()
        let output = request.output.output ?? "-"
        let target = try OutputTarget(output, inputs: inputFiles, cancellation: hooks.cancellation ?? .process)
        do {
            let booted = try BootedNamespace(disk: self, options: PlanOptions(root: request.root, replayJournal: !request.source.noReplay),
                                             journalProgress: hooks.journalProgress)
            let (root, id, layers) = try dockerLayers(booted, reference: reference, image: image, dataRoot: request.dataRoot,
                                                      limits: request.layerLimits)
            let merged = try NamespaceFileSystem(overlayOf: layers, name: "\(root.path) \(image ? "image" : "container") \(id)")
            var walk = TreeWalk(merged)
            // A layer blob's members that could not be placed (docs/limits.md, "Tar input").
            let layerProblems = layers.compactMap { $0.reader as? TarReader }.flatMap { tar in tar.problems.map { "\(tar.sourceName): \($0)" } }
            let (summary, tarBytes, problems) = try Self.archive(&walk, to: target, resolved: resolved, strict: request.strict) { summary in
                layerProblems + summary.problems.map(\.description) + merged.problems.map(\.description) + deviceWarnings().map(\.text)
            }
            return DockerExportResult(what: "\(image ? "image" : "container") \(reference) (\(id)) in \(root.path)",
                                      output: output, layers: layers.count, members: summary.members, files: summary.files,
                                      hardlinks: summary.hardlinks, contentBytes: summary.contentBytes, tarBytes: tarBytes,
                                      problems: problems)
        } catch {
            target.abort()
            throw placed(error)
        }
    }

    /// The data-root holding `reference` (the first that has it, or `dataRoot`), its id and layers.
    private func dockerLayers(_ booted: BootedNamespace, reference: String, image: Bool,
                              dataRoot: String?, limits: LayerLimits) throws -> (DataRoot, String, [Layer]) {
        let (roots, _) = DataRootLocator.locate(in: booted.namespace, binds: booted.binds)
        var lastError: any Error = FWError(.notFound, "no Docker data-root found\(dataRoot.map { " at \($0)" } ?? "")")
        for root in roots.map(\.root) where dataRoot == nil || root.path == dataRoot {
            do {
                let (id, layers) = image ? try root.imageLayers(reference, limits: limits) : try root.containerLayers(reference)
                return (root, id, layers)
            } catch {
                lastError = error
            }
        }
        throw lastError
    }
}
