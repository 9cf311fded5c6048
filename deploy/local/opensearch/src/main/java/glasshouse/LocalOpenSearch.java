package glasshouse;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;
import org.apache.logging.log4j.core.LoggerContext;
import org.apache.logging.log4j.core.config.Configurator;
import org.opensearch.client.Client;
import org.opensearch.common.logging.LogConfigurator;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.plugins.Plugin;

/**
 * Runs one OpenSearch node in the foreground for the Glasshouse local stack.
 *
 * <p>The server and its modules come from Maven Central as plain jars on the class path, so there is no
 * distribution layout: the modules are handed to {@link Node} as class path plugins instead of being
 * discovered under {@code $home/modules}. The process stays up until it gets SIGTERM (or SIGINT), then
 * closes the node and exits.
 *
 * <pre>
 * java [jvm flags] -cp 'classes:lib/*' glasshouse.LocalOpenSearch \
 *     --home DIR [--data DIR] [--logs DIR] [--config DIR] \
 *     [--http-port 9200] [--transport-port 9300] [-Esome.setting=value ...]
 * </pre>
 *
 * Every option can also be given as a system property: glasshouse.opensearch.home, .data, .logs, .config,
 * .http.port, .transport.port, .default.replicas, .plugins (comma separated plugin class names).
 * Command line wins.
 */
public final class LocalOpenSearch extends Node {

    private static final String PROP = "glasshouse.opensearch.";

    /** Plugin classes loaded by default; each one comes from a jar declared in pom.xml. */
    static final List<String> DEFAULT_PLUGINS = List.of(
        "org.opensearch.transport.Netty4Plugin",                  // transport-netty4-client
        "org.opensearch.analysis.common.CommonAnalysisPlugin",    // analysis-common
        "org.opensearch.index.mapper.MapperExtrasPlugin",         // mapper-extras-client
        "org.opensearch.index.reindex.ReindexPlugin",             // reindex-client
        "org.opensearch.painless.PainlessPlugin",                 // lang-painless
        "org.opensearch.ingest.common.IngestCommonPlugin"         // ingest-common
    );

    private LocalOpenSearch(Environment environment, Collection<Class<? extends Plugin>> plugins) {
        // Node(Environment, Collection<Class<? extends Plugin>>, boolean forbidPrivateIndexSettings):
        // the only constructor that accepts class path plugins; true = same as a packaged server.
        super(environment, plugins, true);
    }

    public static void main(String[] args) {
        try {
            run(args);
        } catch (Throwable t) {
            System.err.println("glasshouse-opensearch: failed to start: " + t);
            t.printStackTrace();
            // exit() runs the shutdown hook, which closes a half-started node
            System.exit(1);
        }
    }

    private static void run(String[] args) throws Exception {
        Options o = Options.parse(args);
        if (o.help) {
            System.out.println(USAGE);
            return;
        }
        LogConfigurator.registerErrorListener();

        Files.createDirectories(o.data);
        Files.createDirectories(o.logs);

        Settings.Builder sb = Settings.builder()
            .put("path.home", o.home.toString())
            .put("path.data", o.data.toString())
            .put("path.logs", o.logs.toString())
            .put("cluster.name", "glasshouse")
            .put("node.name", "glasshouse-1")
            .put("network.host", "127.0.0.1")
            .put("http.port", o.httpPort)
            .put("transport.port", o.transportPort)
            .put("discovery.type", "single-node")
            .put("cluster.routing.allocation.disk.threshold_enabled", false);
        for (Map.Entry<String, String> e : o.extra.entrySet()) {
            sb.put(e.getKey(), e.getValue());
        }
        Environment env = InternalSettingsPreparer.prepareEnvironment(sb.build(), Collections.emptyMap(), o.config, () -> "glasshouse-1");

        // the %node_name pattern converter needs the name before log4j reads its configuration
        LogConfigurator.setNodeName(env.settings().get("node.name"));
        if (Files.isRegularFile(env.configFile().resolve("log4j2.properties"))) {
            LogConfigurator.configure(env);
        } else {
            LogConfigurator.configureWithoutConfig(env.settings());
        }
        Logger log = LogManager.getLogger(LocalOpenSearch.class);

        List<Class<? extends Plugin>> plugins = new ArrayList<>();
        for (String name : o.plugins) {
            plugins.add(Class.forName(name).asSubclass(Plugin.class));
        }
        log.info("home [{}], data [{}], logs [{}], config [{}], plugins {}", o.home, o.data, o.logs, env.configFile(), o.plugins);

        LocalOpenSearch node = new LocalOpenSearch(env, plugins);
        CountDownLatch closed = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                log.info("stopping");
                node.close();
                if (!node.awaitClose(30, TimeUnit.SECONDS)) {
                    log.warn("node did not close within 30s");
                }
                log.info("stopped");
            } catch (Throwable t) {
                log.error("error while stopping", t);
            } finally {
                // log4j's own shutdown hook is off (-Dlog4j.shutdownHookEnabled=false) so that the lines
                // above still get written; flush and stop it here, last.
                Configurator.shutdown((LoggerContext) LogManager.getContext(false));
                closed.countDown();
            }
        }, "glasshouse-opensearch-shutdown"));

        node.start();
        if (o.defaultReplicas != null) {
            applyDefaultReplicas(node, o.defaultReplicas, log);
        }
        log.info("ready: http://127.0.0.1:{}", o.httpPort);
        // OpenSearch's own threads are daemon threads: keep the JVM up until the shutdown hook has run.
        closed.await();
    }

    /**
     * One node can never hold a replica, so indices created with the default of 1 replica stay yellow.
     * cluster.default_number_of_replicas is only read from the cluster state (not from node settings), so
     * it is stored as a persistent cluster setting once the state is recovered, unless one is already there
     * (a setting made through the API, or by an earlier start on the same data dir, is left alone).
     */
    private static void applyDefaultReplicas(Node node, String replicas, Logger log) {
        final String key = "cluster.default_number_of_replicas";
        try {
            Client client = node.client();
            client.admin().cluster().prepareHealth().setWaitForYellowStatus().setTimeout("60s").get();
            Settings persistent = client.admin().cluster().prepareState().clear().setMetadata(true).get()
                .getState().metadata().persistentSettings();
            if (persistent.get(key) == null) {
                client.admin().cluster().prepareUpdateSettings()
                    .setPersistentSettings(Settings.builder().put(key, Integer.parseInt(replicas))).get();
                log.info("set persistent cluster setting [{}] to [{}]", key, replicas);
            }
        } catch (RuntimeException e) {
            log.warn("could not set [" + key + "]; new indices will default to 1 replica (yellow)", e);
        }
    }

    private static final String USAGE = String.join("\n",
        "usage: glasshouse.LocalOpenSearch --home DIR [--data DIR] [--logs DIR] [--config DIR]",
        "                                  [--http-port N] [--transport-port N] [--plugins a.B,c.D]",
        "                                  [--default-replicas N|none] [-Ekey=value ...]",
        "defaults: data=$home/data logs=$home/logs config=$home/config http-port=9200 transport-port=9300",
        "          default-replicas=0 (persistent cluster.default_number_of_replicas; none = leave as is)",
        "system properties glasshouse.opensearch.{home,data,logs,config,http.port,transport.port,plugins,",
        "default.replicas} work too");

    /** Command line and system property handling; nothing clever. */
    static final class Options {
        boolean help;
        Path home;
        Path data;
        Path logs;
        Path config;
        int httpPort;
        int transportPort;
        List<String> plugins;
        String defaultReplicas;
        final Map<String, String> extra = new LinkedHashMap<>();

        static Options parse(String[] args) {
            Map<String, String> given = new LinkedHashMap<>();
            Options o = new Options();
            for (int i = 0; i < args.length; i++) {
                String a = args[i];
                if (a.equals("-h") || a.equals("--help")) {
                    o.help = true;
                } else if (a.startsWith("-E")) {
                    String kv = a.length() > 2 ? a.substring(2) : value(args, ++i, a);
                    int eq = kv.indexOf('=');
                    if (eq <= 0) {
                        throw new IllegalArgumentException("expected -Ekey=value, got " + a);
                    }
                    o.extra.put(kv.substring(0, eq), kv.substring(eq + 1));
                } else if (a.startsWith("--")) {
                    String key = a.substring(2);
                    String val;
                    int eq = key.indexOf('=');
                    if (eq >= 0) {
                        val = key.substring(eq + 1);
                        key = key.substring(0, eq);
                    } else {
                        val = value(args, ++i, a);
                    }
                    switch (key) {
                        case "home": case "data": case "logs": case "config": case "plugins":
                            given.put(key, val);
                            break;
                        case "http-port":
                            given.put("http.port", val);
                            break;
                        case "transport-port":
                            given.put("transport.port", val);
                            break;
                        case "default-replicas":
                            given.put("default.replicas", val);
                            break;
                        default:
                            throw new IllegalArgumentException("unknown option " + a + "\n" + USAGE);
                    }
                } else {
                    throw new IllegalArgumentException("unexpected argument " + a + "\n" + USAGE);
                }
            }
            if (o.help) {
                return o;
            }
            String home = pick(given, "home", null);
            if (home == null || home.isEmpty()) {
                throw new IllegalArgumentException("--home (or -D" + PROP + "home) is required\n" + USAGE);
            }
            o.home = Paths.get(home).toAbsolutePath().normalize();
            o.data = path(pick(given, "data", o.home.resolve("data").toString()));
            o.logs = path(pick(given, "logs", o.home.resolve("logs").toString()));
            o.config = path(pick(given, "config", o.home.resolve("config").toString()));
            o.httpPort = Integer.parseInt(pick(given, "http.port", "9200"));
            o.transportPort = Integer.parseInt(pick(given, "transport.port", "9300"));
            String replicas = pick(given, "default.replicas", "0").trim();
            if (replicas.equals("none") || replicas.isEmpty()) {
                o.defaultReplicas = null;
            } else {
                Integer.parseInt(replicas); // fail early on a typo
                o.defaultReplicas = replicas;
            }
            String plugins = pick(given, "plugins", String.join(",", DEFAULT_PLUGINS));
            o.plugins = new ArrayList<>();
            for (String p : plugins.split(",")) {
                if (!p.isBlank()) {
                    o.plugins.add(p.trim());
                }
            }
            return o;
        }

        private static String value(String[] args, int i, String opt) {
            if (i >= args.length) {
                throw new IllegalArgumentException("missing value for " + opt);
            }
            return args[i];
        }

        private static String pick(Map<String, String> given, String key, String dflt) {
            String v = given.get(key);
            if (v == null) {
                v = System.getProperty(PROP + key);
            }
            return v != null ? v : dflt;
        }

        private static Path path(String p) {
            return Paths.get(p).toAbsolutePath().normalize();
        }
    }
}
