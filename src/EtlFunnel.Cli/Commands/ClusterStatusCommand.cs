using System.ComponentModel;
using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using EtlFunnel.Cli.Hosting;
using EtlFunnel.Cluster;
using EtlFunnel.Cluster.Status;
using EtlFunnel.Cluster.Worker;
using Spectre.Console;
using Spectre.Console.Cli;

namespace EtlFunnel.Cli.Commands;

/// <summary>How <c>cluster status</c> prints.</summary>
internal enum ClusterStatusFormat
{
    /// <summary>Spectre tables: members, replicas owned now, failovers.</summary>
    Table,

    /// <summary>One JSON object (docs/cluster.md, "cluster status"), for scripts.</summary>
    Json,
}

internal sealed class ClusterStatusSettings : CommonSettings
{
    [CommandOption("--cluster <CONN>")]
    [Description(ClusterOptionsText.Cluster)]
    public string? Cluster { get; init; }

    [CommandOption("--cluster-id <ID>")]
    [Description("Which cluster in that database (default etlfunnel, or ETLFUNNEL_CLUSTER_ID).")]
    public string? ClusterId { get; init; }

    [CommandOption("-f|--format <FORMAT>")]
    [Description("table (default) or json.")]
    [DefaultValue(ClusterStatusFormat.Table)]
    public ClusterStatusFormat Format { get; init; } = ClusterStatusFormat.Table;

    public override ValidationResult Validate() =>
        string.IsNullOrWhiteSpace(Cluster) ? ValidationResult.Error("--cluster <CONN> is required, e.g. --cluster postgres://etl@db:5432/etlstate") : ValidationResult.Success();
}

/// <summary><c>etlfunnel cluster status</c>: the members of a cluster, the replicas each owns now and the failovers, read from its state database.</summary>
internal sealed class ClusterStatusCommand(CliContext context) : AsyncCommand<ClusterStatusSettings>
{
    public override async Task<int> ExecuteAsync(CommandContext commandContext, ClusterStatusSettings settings, CancellationToken cancellationToken)
    {
        if (ClusterCommandLine.Settings(settings.Cluster!, settings.ClusterId, null, null, context.Environment) is not { } cluster)
        {
            await context.Err.WriteLineAsync("error: --cluster: not a postgres:// URL nor an Npgsql connection string, e.g. --cluster postgres://etl@db:5432/etlstate").ConfigureAwait(false);
            return ExitCodes.Usage;
        }

        ClusterStatusReport report;
        try
        {
            await using var dataSource = ClusterData.Open(cluster);
            report = await ClusterStatusReader.ReadAsync(dataSource, cluster, cancellationToken).ConfigureAwait(false);
        }
        catch (ClusterException ex)
        {
            await context.Err.WriteLineAsync($"error: {ex.Message}").ConfigureAwait(false);
            return ExitCodes.Failure;
        }

        if (settings.Format == ClusterStatusFormat.Json)
        {
            await context.Out.WriteLineAsync(ClusterStatusJson.Serialize(report)).ConfigureAwait(false);
        }
        else
        {
            Write(context.Console, report);
        }

        await context.Out.FlushAsync(cancellationToken).ConfigureAwait(false);
        return ExitCodes.Ok;
    }

    private static void Write(IAnsiConsole console, ClusterStatusReport report)
    {
        console.MarkupLine($"Cluster [bold]{Markup.Escape(report.ClusterId)}[/] in {Markup.Escape(report.Server)}: " +
            $"{report.AliveMembers} of {report.Members.Count} members alive, {report.Replicas.Count} replicas running, {report.Failovers} failovers");
        var perMember = report.ReplicasPerMember;
        var members = new Table().Border(TableBorder.Rounded).Title("members")
            .AddColumn("member").AddColumn("silo").AddColumn(new TableColumn("cores").RightAligned()).AddColumn(new TableColumn("memory").RightAligned())
            .AddColumn("region").AddColumn("labels").AddColumn("last heartbeat").AddColumn("state").AddColumn(new TableColumn("replicas").RightAligned());
        foreach (var m in report.Members)
        {
            var state = m.Alive ? "[green]alive[/]" : m.LeftAt is not null ? "left" : "[red]not seen[/]";
            members.AddRow(Markup.Escape(m.Name), Markup.Escape(m.Silo), m.Cores.ToString(CultureInfo.InvariantCulture),
                (m.MemoryBytes / (double)(1L << 30)).ToString("0.#", CultureInfo.InvariantCulture) + " GiB", Markup.Escape(m.Region ?? "-"),
                Markup.Escape(m.Labels.Count == 0 ? "-" : string.Join(",", m.Labels.Select(l => $"{l.Key}={l.Value}"))),
                Time(m.SeenAt), state, perMember.GetValueOrDefault(m.Silo).ToString(CultureInfo.InvariantCulture));
        }

        console.Write(members);
        if (report.Replicas.Count > 0)
        {
            var names = report.Members.ToDictionary(m => m.Silo, m => m.Name, StringComparer.Ordinal);
            var replicas = new Table().Border(TableBorder.Rounded).Title("replicas running")
                .AddColumn("member").AddColumn("flow/replica").AddColumn("run").AddColumn(new TableColumn("epoch").RightAligned()).AddColumn("since");
            foreach (var r in report.Replicas)
            {
                replicas.AddRow(Markup.Escape(names.GetValueOrDefault(r.Silo, r.Silo)), Markup.Escape($"{r.Flow}/{r.Replica}"), Markup.Escape(r.RunId),
                    r.Epoch.ToString(CultureInfo.InvariantCulture), r.Since is { } since ? Time(since) : "-");
            }

            console.Write(replicas);
        }

        if (report.FailedOver.Count > 0)
        {
            var names = report.Members.ToDictionary(m => m.Silo, m => m.Name, StringComparer.Ordinal);
            var failovers = new Table().Border(TableBorder.Rounded).Title("failovers (leases taken over from an owner that stopped renewing)")
                .AddColumn("flow/replica").AddColumn("run").AddColumn(new TableColumn("takeovers").RightAligned()).AddColumn("status").AddColumn("owner now");
            foreach (var f in report.FailedOver)
            {
                failovers.AddRow(Markup.Escape($"{f.Flow}/{f.Replica}"), Markup.Escape(f.RunId), f.Takeovers.ToString(CultureInfo.InvariantCulture),
                    Markup.Escape(f.Status), Markup.Escape(f.Silo is null ? "-" : names.GetValueOrDefault(f.Silo, f.Silo)));
            }

            console.Write(failovers);
        }
    }

    private static string Time(DateTimeOffset t) => t.ToUniversalTime().ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture);
}

/// <summary>The <c>cluster status --format json</c> document.</summary>
internal static class ClusterStatusJson
{
    private static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public static string Serialize(ClusterStatusReport report)
    {
        var perMember = report.ReplicasPerMember;
        return JsonSerializer.Serialize(new
        {
            clusterId = report.ClusterId,
            server = report.Server,
            aliveMembers = report.AliveMembers,
            failovers = report.Failovers,
            members = report.Members.Select(m => new
            {
                name = m.Name,
                silo = m.Silo,
                cores = m.Cores,
                memoryBytes = m.MemoryBytes,
                region = m.Region,
                labels = m.Labels,
                startedAt = m.StartedAt,
                lastHeartbeat = m.SeenAt,
                leftAt = m.LeftAt,
                alive = m.Alive,
                replicas = perMember.GetValueOrDefault(m.Silo),
            }),
            replicas = report.Replicas.Select(r => new { silo = r.Silo, runId = r.RunId, flow = r.Flow, replica = r.Replica, epoch = r.Epoch, since = r.Since }),
            failedOver = report.FailedOver.Select(f => new { runId = f.RunId, flow = f.Flow, replica = f.Replica, takeovers = f.Takeovers, status = f.Status, silo = f.Silo }),
        }, Options);
    }
}
